"""The hostile cases of issue #12 (Python side) as small scripts for ``tools/hostile_matrix.py``.

Every case is plain Python run in a fresh process of the checkout under test,
using only API that the pre-session code (2522c56) and the current code both
have. ``W`` is a folder of fixtures made once per checkout by :data:`SETUP`
(tiny checkpoint, exported tiny ONNX artifact, tiny conv models, a
decompression bomb); ``T`` is the case's own scratch folder. A case ends by
calling ``out(outcome, note)`` (the prelude's helpers classify exceptions
and CLI runs).
"""

from __future__ import annotations

from dataclasses import dataclass

PRELUDE = r'''
import contextlib, io, json, os, shutil, subprocess, sys, threading, time, warnings
from pathlib import Path
import numpy as np
W, T = Path(sys.argv[1]), Path(sys.argv[2])
warnings.simplefilter("ignore")

def out(outcome, note=""):
    print("@@RESULT " + json.dumps({"outcome": outcome, "note": str(note)[:240]}), flush=True)
    os._exit(0)

def first_line(e):
    lines = str(e).strip().splitlines()
    return lines[0] if lines else type(e).__name__

def judge(e, clear):
    """A documented qtseg error with a one-line message is clear; anything else a traceback."""
    names = {c.__name__ for c in type(e).__mro__}
    one_line = "\n" not in str(e).strip()
    kind = "clear error" if names & set(clear) and one_line else "traceback"
    out(kind, f"{type(e).__name__}: {first_line(e)}")

def expect_refusal(fn, clear, wrong_note="accepted and returned a result", outcome="silent wrong"):
    try:
        fn()
    except BaseException as e:
        judge(e, clear)
    out(outcome, wrong_note)

def cli(main, argv, expect_fail=True):
    err, std = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(std):
            rc = main([str(a) for a in argv])
    except SystemExit as e:
        rc = e.code if isinstance(e.code, int) else 1
    except BaseException as e:
        out("traceback", f"{type(e).__name__}: {first_line(e)}")
    text = err.getvalue()
    lines = [l for l in text.splitlines() if l.strip()]
    if "Traceback (most recent call last)" in text:
        out("traceback", lines[-1] if lines else "")
    if rc == 0:
        out("silent wrong" if expect_fail else "ok", "exit 0" + (f"; {lines[-1]}" if lines else ""))
    errors = [l for l in lines if "error" in l.lower()]
    if errors:
        out("clear error", f"exit {rc}: {errors[0]}")
    out("traceback", f"exit {rc} without an error line")

def copy(src, name):
    dst = T / name
    shutil.copytree(src, dst, symlinks=True)
    return dst

def rerecord(ckpt):
    """Re-record hashes after an edit where the format has them (what a careless user or an attacker does)."""
    meta = json.loads((ckpt / "checkpoint.json").read_text())
    if "files" in meta:
        from qtseg.manifest import describe_files
        roles = {r: e["path"] for r, e in meta["files"].items()}
        meta["files"] = {r: f.to_dict() for r, f in describe_files(ckpt, roles).items()}
        (ckpt / "checkpoint.json").write_text(json.dumps(meta))

def edit_json(path, edit):
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))

def set_file(manifest_dir, role, value):
    """Point files[role] at ``value`` in either manifest format (v1: a string, v2: an object)."""
    def edit(m):
        if isinstance(m["files"][role], dict):
            m["files"][role]["path"] = value
        else:
            m["files"][role] = value
    edit_json(manifest_dir / "manifest.json", edit)

def image(hw=128, seed=0):
    return np.random.default_rng(seed).random((1, 3, hw, hw), dtype=np.float32)

def hammer(infer, inputs, threads=4):
    outputs, errors = {}, []
    barrier = threading.Barrier(threads)
    def work(t):
        barrier.wait()
        for i in range(t, len(inputs), threads):
            try:
                outputs[i] = infer(inputs[i])
            except Exception as e:
                errors.append(e)
    ths = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    [t.start() for t in ths]
    [t.join() for t in ths]
    return outputs, errors

def thread_case(infer, hw):
    inputs = [image(hw, seed=i) for i in range(200)]
    expected = [infer(x) for x in inputs]
    outputs, errors = hammer(infer, inputs)
    wrong = sum(1 for i, e in enumerate(expected) if i in outputs and not np.array_equal(outputs[i], e))
    note = f"{len(errors)} of 200 calls raised, {wrong} returned other logits"
    if wrong:
        out("silent wrong", note)
    if errors:
        out("traceback", note + f" ({type(errors[0]).__name__}: {first_line(errors[0])})")
    out("ok", note)
'''

SETUP = r'''
import torch
from qtseg.checkpoint import save_checkpoint
from qtseg.models import create
from qtseg.preprocess import PreprocessSpec
from qtseg.export.cli import main as export_main
import onnx
from onnx import TensorProto, helper, numpy_helper

torch.manual_seed(0)
save_checkpoint(W / "ckpt", create("qtseg-v2", width=8, img_size=(128, 128)).eval(), PreprocessSpec(input_size=(128, 128)))
torch.manual_seed(1)
save_checkpoint(W / "ckpt_other", create("qtseg-v2", width=8, img_size=(128, 128)).eval(), PreprocessSpec(input_size=(128, 128)))
rc = export_main(["--target", "onnx", "--checkpoint", str(W / "ckpt"), "--out", str(W / "exports"),
                  "--num-samples", "2", "--quiet"])
assert rc == 0, rc
model = onnx.load(str(W / "exports" / "qtseg-v2_onnx" / "model.onnx"))
biggest = max(model.graph.initializer, key=lambda t: int(np.prod(t.dims)))
arr = numpy_helper.to_array(biggest)
biggest.CopyFrom(numpy_helper.from_array(-arr, biggest.name))
onnx.save(model, str(W / "negated.onnx"))

def conv(path, w0=None, hw=32):
    rng = np.random.default_rng(0)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(2).astype(np.float32)
    if w0 is not None:
        w.flat[0] = w0
    g = helper.make_graph([helper.make_node("Conv", ["image", "w", "b"], ["logits"], pads=[1, 1, 1, 1])], "tiny",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["n", 3, hw, hw])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["n", 2, hw, hw])],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    onnx.save(m, str(path))

conv(W / "conv.onnx", hw=96)
conv(W / "conv_nan.onnx", w0=np.nan)

import struct, zlib
def chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
def bomb(path, width, height):
    row = b"\x00" * (1 + (width + 7) // 8)
    z = zlib.compressobj(9)
    body = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", body) + chunk(b"IEND", b""))
bomb(W / "bomb.png", 20000, 20000)
import qtseg
(W / "bomb_samples" / "images").mkdir(parents=True)
shutil.copy(qtseg.SAMPLES_DIR / "images" / sorted(os.listdir(qtseg.SAMPLES_DIR / "images"))[0], W / "bomb_samples" / "images")
shutil.copy(W / "bomb.png", W / "bomb_samples" / "images" / "zz_bomb.png")
(W / "junk_samples" / "images").mkdir(parents=True)
shutil.copy(qtseg.SAMPLES_DIR / "images" / sorted(os.listdir(qtseg.SAMPLES_DIR / "images"))[0], W / "junk_samples" / "images")
(W / "junk_samples" / "images" / "zz_junk.png").write_bytes(b"not an image")
out("ok", "fixtures made")
'''


@dataclass(frozen=True)
class Case:
    """One hostile case: an id, the area of #12 it belongs to, what it does, its script."""

    id: str
    area: str
    what: str
    code: str
    slow: bool = False


CK = '("CheckpointError",)'
ART = '("ManifestError", "BackendError")'
IMG = '("ImageReadError",)'

CASES: list[Case] = [
    # -- checkpoints (#12 items 3, 4) ------------------------------------------------------
    Case("ckpt-weight-changed", "checkpoint", "one weight byte changed, qtseg.load",
         f"""import qtseg
c = copy(W / "ckpt", "c"); d = bytearray((c / "weights.safetensors").read_bytes()); d[-4] ^= 1
(c / "weights.safetensors").write_bytes(bytes(d))
expect_refusal(lambda: qtseg.load(c), {CK}, "loaded the changed weights")"""),
    Case("ckpt-spec-input-size", "checkpoint", "saved with preprocess input 64 for a 128-px model",
         f"""import torch, qtseg
from qtseg.checkpoint import save_checkpoint
from qtseg.models import create
from qtseg.preprocess import PreprocessSpec
save_checkpoint(T / "c", create("qtseg-v2", width=8, img_size=(128, 128)), PreprocessSpec(input_size=(64, 64)))
expect_refusal(lambda: qtseg.load(T / "c"), {CK}, "loaded; preprocessing at 64 px for a 128-px model")"""),
    Case("ckpt-spec-num-classes", "checkpoint", "saved with preprocess num_classes 3 for a 2-class model",
         f"""import torch, qtseg
from qtseg.checkpoint import save_checkpoint
from qtseg.models import create
from qtseg.preprocess import PreprocessSpec
save_checkpoint(T / "c", create("qtseg-v2", width=8, img_size=(128, 128)), PreprocessSpec(input_size=(128, 128), num_classes=3))
expect_refusal(lambda: qtseg.load(T / "c"), {CK}, "loaded; spec says 3 classes, model has 2")"""),
    Case("ckpt-spec-scalar-size", "checkpoint", "preprocess.json input_size: 256 (hashes re-recorded)",
         f"""import qtseg
c = copy(W / "ckpt", "c"); edit_json(c / "preprocess.json", lambda d: d.update(input_size=256)); rerecord(c)
expect_refusal(lambda: qtseg.load(c), {CK})"""),
    Case("ckpt-weights-garbage", "checkpoint", "weights.safetensors is 64 zero bytes (re-recorded)",
         f"""import qtseg
c = copy(W / "ckpt", "c"); (c / "weights.safetensors").write_bytes(bytes(64)); rerecord(c)
expect_refusal(lambda: qtseg.load(c), {CK})"""),
    Case("ckpt-weights-pickle", "checkpoint", "weights.safetensors is a torch pickle (re-recorded)",
         f"""import torch, qtseg
c = copy(W / "ckpt", "c"); torch.save({{"w": torch.zeros(1)}}, c / "weights.safetensors"); rerecord(c)
expect_refusal(lambda: qtseg.load(c), {CK})"""),
    Case("ckpt-no-model-key", "checkpoint", "checkpoint.json without 'model'",
         f"""import qtseg
c = copy(W / "ckpt", "c"); edit_json(c / "checkpoint.json", lambda d: d.pop("model"))
expect_refusal(lambda: qtseg.load(c), {CK})"""),
    Case("ckpt-unknown-model", "checkpoint", "checkpoint.json model 'unet-9000'",
         f"""import qtseg
c = copy(W / "ckpt", "c"); edit_json(c / "checkpoint.json", lambda d: d.update(model="unet-9000"))
expect_refusal(lambda: qtseg.load(c), {CK})"""),
    Case("ckpt-config-type", "checkpoint", "config width \"8\" (a string)",
         f"""import qtseg
c = copy(W / "ckpt", "c"); edit_json(c / "checkpoint.json", lambda d: d["config"].update(width="8"))
expect_refusal(lambda: qtseg.load(c), {CK})"""),
    Case("ckpt-nan-weights", "checkpoint", "saved with one NaN weight, then run",
         f"""import torch, qtseg
from qtseg.checkpoint import save_checkpoint
from qtseg.models import create
from qtseg.preprocess import PreprocessSpec
m = create("qtseg-v2", width=8, img_size=(128, 128)).eval()
with torch.no_grad():
    next(m.parameters()).view(-1)[0] = float("nan")
save_checkpoint(T / "c", m, PreprocessSpec(input_size=(128, 128)))
def run():
    model, spec = qtseg.load(T / "c")
    with torch.no_grad():
        y = model(torch.from_numpy(image()))
    return y
expect_refusal(run, {CK}, "ran and returned NaN logits")"""),
    Case("ckpt-weights-symlink-out", "checkpoint", "weights.safetensors symlinked to another model's",
         f"""import qtseg
c = copy(W / "ckpt", "c"); (c / "weights.safetensors").unlink()
(c / "weights.safetensors").symlink_to(W / "ckpt_other" / "weights.safetensors")
expect_refusal(lambda: qtseg.load(c), {CK}, "loaded another model's weights")"""),
    Case("resume-malicious-pickle", "checkpoint", "qtseg-train --resume with a last.pt that runs code",
         """import torch
from qtseg.cli.train import main
marker = T / "code_ran"
class P:
    def __reduce__(self):
        return (Path.touch, (marker,))
(T / "run").mkdir()
torch.save({"model": {}, "optimizer": {}, "payload": P()}, T / "run" / "last.pt")
import qtseg
data = Path(qtseg.__file__).resolve().parents[1].parent / "shared" / "data" / "kvasir-seg"
err = io.StringIO()
try:
    with contextlib.redirect_stderr(err):
        rc = main(["--data", str(data), "--epochs", "1", "--batch", "4", "--imgsz", "64", "--width", "4",
                   "--limit", "8", "--workers", "1", "--out", str(T / "run"), "--resume"])
except BaseException as e:
    rc = None
    exc = e
if marker.exists():
    out("code executed", "the pickle's payload ran")
if rc is None:
    out("traceback", f"{type(exc).__name__}: {first_line(exc)}")
out("clear error" if rc else "silent wrong", err.getvalue().strip().splitlines()[-1] if err.getvalue().strip() else f"exit {rc}")"""),
    Case("resume-garbage", "checkpoint", "qtseg-train --resume with a garbage last.pt",
         """from qtseg.cli.train import main
import qtseg
(T / "run").mkdir(); (T / "run" / "last.pt").write_bytes(b"garbage")
data = Path(qtseg.__file__).resolve().parents[1].parent / "shared" / "data" / "kvasir-seg"
cli(main, ["--data", data, "--epochs", "1", "--batch", "4", "--imgsz", "64", "--width", "4",
           "--limit", "8", "--workers", "1", "--out", T / "run", "--resume"])"""),
    # -- non-finite values (#12 item 5) ----------------------------------------------------
    Case("nan-input-ort", "non-finite", "NaN in the input tensor, ONNX Runtime",
         """from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
x = image(96); x[0, 0, 5, 5] = np.nan
be = OnnxRuntimeBackend(W / "conv.onnx")
expect_refusal(lambda: be.infer(x), ("NonFiniteInput", "NonFiniteError"), "returned logits with NaN")"""),
    Case("nan-input-openvino", "non-finite", "Inf in the input tensor, OpenVINO",
         """from qtseg.backends.openvino_backend import OpenVINOBackend
x = image(96); x[0, 0, 5, 5] = np.inf
be = OpenVINOBackend(W / "conv.onnx")
expect_refusal(lambda: be.infer(x), ("NonFiniteInput", "NonFiniteError"), "returned logits with NaN/Inf")"""),
    Case("nan-weights-ort", "non-finite", "model with a NaN weight, ONNX Runtime",
         """from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
be = OnnxRuntimeBackend(W / "conv_nan.onnx")
expect_refusal(lambda: be.infer(image(32)), ("NonFiniteOutput", "NonFiniteError"), "returned NaN logits")"""),
    Case("nan-weights-openvino", "non-finite", "model with a NaN weight, OpenVINO",
         """from qtseg.backends.openvino_backend import OpenVINOBackend
be = OpenVINOBackend(W / "conv_nan.onnx")
expect_refusal(lambda: be.infer(image(32)), ("NonFiniteOutput", "NonFiniteError"), "returned NaN logits")"""),
    Case("nan-weights-torch", "non-finite", "nn.Module with a NaN weight, torch backend",
         """import torch
from qtseg.backends.torch_backend import TorchBackend
conv = torch.nn.Conv2d(3, 2, 3, padding=1).eval()
with torch.no_grad():
    conv.weight.view(-1)[0] = float("nan")
be = TorchBackend(conv, input_size=(32, 32))
expect_refusal(lambda: be.infer(image(32)), ("NonFiniteOutput", "NonFiniteError"), "returned NaN logits")"""),
    # -- thread safety (#12 item 6) --------------------------------------------------------
    Case("threads-openvino", "threads", "4 threads x 50 calls, OpenVINO, compared bit for bit",
         """from qtseg.backends.openvino_backend import OpenVINOBackend
thread_case(OpenVINOBackend(W / "conv.onnx").infer, 96)"""),
    Case("threads-ort", "threads", "4 threads x 50 calls, ONNX Runtime",
         """from qtseg.backends.onnxruntime_backend import OnnxRuntimeBackend
thread_case(OnnxRuntimeBackend(W / "conv.onnx").infer, 96)"""),
    Case("threads-torch", "threads", "4 threads x 50 calls, torch backend",
         """import torch
from qtseg.backends.torch_backend import TorchBackend
torch.manual_seed(0)
thread_case(TorchBackend(torch.nn.Conv2d(3, 2, 3, padding=1).eval(), input_size=(96, 96)).infer, 96)"""),
    # -- images (#12 item 7, Python decoding) ----------------------------------------------
    Case("bomb-read-image", "images", "20000x20000 PNG of 50 KB, read_image",
         f"""from qtseg.imageio import read_image
expect_refusal(lambda: read_image(W / "bomb.png"), {IMG}, "decoded 400 M pixels")"""),
    Case("bomb-read-mask", "images", "20000x20000 PNG of 50 KB, read_mask",
         f"""from qtseg.imageio import read_mask
expect_refusal(lambda: read_mask(W / "bomb.png"), {IMG}, "decoded 400 M pixels")"""),
    Case("bomb-export-samples", "images", "qtseg-export --samples with a bomb among the images",
         """from qtseg.export.cli import main
cli(main, ["--target", "onnx", "--checkpoint", W / "ckpt", "--out", T / "x", "--samples",
           W / "bomb_samples" / "images", "--quiet"])""", slow=True),
    Case("bomb-bench-data", "images", "qtseg-bench --data with a bomb among the images",
         """from qtseg.bench.cli import main
cli(main, [W / "exports" / "qtseg-v2_onnx", "--data", W / "bomb_samples" / "images", "--num-images", "2",
           "--iters", "1", "--warmup", "0", "--no-plots", "--no-isolate", "--out", T / "r", "--quiet",
           "--checkpoint", W / "ckpt"])""", slow=True),
    Case("junk-bench-data", "images", "qtseg-bench --data with a non-image .png",
         """from qtseg.bench.cli import main
cli(main, [W / "exports" / "qtseg-v2_onnx", "--data", W / "junk_samples" / "images", "--num-images", "2",
           "--iters", "1", "--warmup", "0", "--no-plots", "--no-isolate", "--out", T / "r", "--quiet",
           "--checkpoint", W / "ckpt"])""", slow=True),
    # -- artifacts (#12 items 1-3) ---------------------------------------------------------
    Case("art-weight-negated", "artifact", "model.onnx with one weight tensor negated, open_backend + infer",
         f"""from qtseg.backends import open_backend
a = copy(W / "exports" / "qtseg-v2_onnx", "a"); shutil.copy(W / "negated.onnx", a / "model.onnx")
expect_refusal(lambda: open_backend(a).infer(image()), {ART}, "ran the changed model")"""),
    Case("art-path-absolute", "artifact", "files.model = absolute path of another model",
         f"""from qtseg.backends import open_backend
a = copy(W / "exports" / "qtseg-v2_onnx", "a"); set_file(a, "model", str(W / "negated.onnx"))
expect_refusal(lambda: open_backend(a).infer(image()), {ART}, "ran a model from another folder")"""),
    Case("art-path-dotdot", "artifact", "files.model = ../../../etc/passwd",
         f"""from qtseg.backends import open_backend
a = copy(W / "exports" / "qtseg-v2_onnx", "a"); set_file(a, "model", "../../../../../../etc/passwd")
expect_refusal(lambda: open_backend(a).infer(image()), {ART}, "opened a file outside the folder")"""),
    Case("art-symlink-out", "artifact", "model.onnx is a symlink to a model outside the folder",
         f"""from qtseg.backends import open_backend
a = copy(W / "exports" / "qtseg-v2_onnx", "a"); (a / "model.onnx").unlink()
(a / "model.onnx").symlink_to(W / "negated.onnx")
expect_refusal(lambda: open_backend(a).infer(image()), {ART}, "ran a model from another folder")"""),
    Case("art-schema-99", "artifact", "manifest schema qtseg.manifest/99",
         f"""from qtseg.backends import open_backend
a = copy(W / "exports" / "qtseg-v2_onnx", "a"); edit_json(a / "manifest.json", lambda d: d.update(schema="qtseg.manifest/99"))
expect_refusal(lambda: open_backend(a).infer(image()), {ART}, "accepted an unknown schema", "accepted")"""),
    Case("art-no-inputs", "artifact", "manifest without 'inputs'",
         f"""from qtseg.backends import open_backend
a = copy(W / "exports" / "qtseg-v2_onnx", "a"); edit_json(a / "manifest.json", lambda d: d.pop("inputs"))
expect_refusal(lambda: open_backend(a).infer(image()), {ART}, "accepted a manifest without inputs", "accepted")"""),
    Case("art-truncated", "artifact", "model.onnx truncated to half",
         f"""from qtseg.backends import open_backend
a = copy(W / "exports" / "qtseg-v2_onnx", "a"); d = (a / "model.onnx").read_bytes()
(a / "model.onnx").write_bytes(d[: len(d) // 2])
expect_refusal(lambda: open_backend(a).infer(image()), {ART}, "ran a truncated model")"""),
    Case("bench-tampered-artifact", "artifact", "qtseg-bench on an artifact with a negated weight",
         """from qtseg.bench.cli import main
a = copy(W / "exports" / "qtseg-v2_onnx", "qtseg-v2_onnx"); shutil.copy(W / "negated.onnx", a / "model.onnx")
cli(main, [a, "--num-images", "2", "--iters", "1", "--warmup", "0", "--no-plots", "--no-isolate",
           "--out", T / "r", "--quiet", "--checkpoint", W / "ckpt"])""", slow=True),
    # -- writes, kills, concurrency (#12 item 8) -------------------------------------------
    Case("kill-at-every-step", "writes", "replace a folder, process killed after each filesystem step",
         r'''import qtseg.atomic as atomic
CHILD = """
import os, shutil, sys
from pathlib import Path
import qtseg.atomic as atomic
final, k = Path(sys.argv[1]), int(sys.argv[2])
count = [0]
def step(fn):
    def wrapped(*a, **kw):
        r = fn(*a, **kw)
        count[0] += 1
        if count[0] == k:
            os._exit(9)
        return r
    return wrapped
os.replace, os.rename, shutil.rmtree = step(os.replace), step(os.rename), step(shutil.rmtree)
if hasattr(atomic, "_exchange"):
    atomic._exchange = step(atomic._exchange)
with atomic.staging_dir(final) as s:
    (s / "a.txt").write_text("new"); (s / "b.txt").write_text("new")
"""
def complete(folder):
    try:
        a, b = (folder / "a.txt").read_text(), (folder / "b.txt").read_text()
    except OSError:
        return None
    return a if a == b else None
lost = []
for k in range(1, 8):
    final = T / f"k{k}" / "art"
    with atomic.staging_dir(final) as s:
        (s / "a.txt").write_text("old"); (s / "b.txt").write_text("old")
    rc = subprocess.run([sys.executable, "-c", CHILD, str(final), str(k)], capture_output=True).returncode
    if complete(final) is None:
        lost.append(k)
    if rc == 0:
        break
out("data loss" if lost else "ok", f"final path missing or mixed after a kill at step {lost}" if lost else f"final intact after kills at steps 1..{k - 1}")'''),
    Case("stale-staging", "writes", "export killed while building, then the next write to the same place",
         r'''CHILD = """
import sys, time
from pathlib import Path
import qtseg.atomic as atomic
with atomic.staging_dir(Path(sys.argv[1])) as s:
    (s / "a.txt").write_text("new"); (Path(sys.argv[1]).parent / "ready").write_text("")
    time.sleep(600)
"""
import qtseg.atomic as atomic, signal
final = T / "out" / "art"
with atomic.staging_dir(final) as s:
    (s / "a.txt").write_text("old")
p = subprocess.Popen([sys.executable, "-c", CHILD, str(final)])
while not (final.parent / "ready").exists():
    time.sleep(0.05)
p.send_signal(signal.SIGKILL); p.wait(); (final.parent / "ready").unlink()
with atomic.staging_dir(final) as s:
    (s / "a.txt").write_text("next")
left = [x.name for x in final.parent.iterdir() if x.name.startswith(".")]
ok = (final / "a.txt").read_text() == "next"
out("leftover" if left else ("ok" if ok else "data loss"), f"left: {left}" if left else "stale staging folder removed")'''),
    Case("concurrent-writers", "writes", "4 processes x 100 replacements of one folder",
         r'''CHILD = """
import sys
from pathlib import Path
import qtseg.atomic as atomic
for _ in range(100):
    with atomic.staging_dir(Path(sys.argv[1])) as s:
        (s / "a.txt").write_text(sys.argv[2]); (s / "b.txt").write_text(sys.argv[2])
"""
final = T / "art"
ps = [subprocess.Popen([sys.executable, "-c", CHILD, str(final), f"w{i}"], stderr=subprocess.PIPE, text=True) for i in range(4)]
res = [(p.wait(), p.stderr.read()) for p in ps]
bad = [e.strip().splitlines()[-1] for rc, e in res if rc != 0]
if bad:
    out("traceback", f"{len(bad)} of 4 writers failed: {bad[0]}")
complete = (final / "a.txt").read_text() == (final / "b.txt").read_text()
out("ok" if complete else "data loss", "all 4 writers succeeded")'''),
    Case("concurrent-exports", "writes", "two qtseg-export --target onnx into the same --out at once",
         r'''args = [sys.executable, "-m", "qtseg.export.cli", "--target", "onnx", "--checkpoint", str(W / "ckpt"),
        "--out", str(T / "exports"), "--num-samples", "1", "--quiet"]
ps = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
res = [p.communicate() for p in ps]
bad = [(p.returncode, e.strip().splitlines()[-1] if e.strip() else "") for p, (_, e) in zip(ps, res) if p.returncode != 0]
if bad:
    out("traceback" if any("Traceback" in e for _, e in res) else "clear error", f"{bad}")
out("ok", "both exports succeeded")''', slow=True),
    # -- CLI arguments of export and bench ---------------------------------------------------
    *[
        Case(f"export-args-{name}", "cli", f"qtseg-export {' '.join(args)}",
             f"""from qtseg.export.cli import main
cli(main, {args!r} + ["--checkpoint", str(W / "ckpt"), "--out", str(T / "x")])""")
        for name, args in [
            ("batch-0", ["--target", "onnx", "--batch", "0"]),
            ("dynamic-batch-neg", ["--target", "onnx", "--dynamic-batch", "-1"]),
            ("imgsz-33", ["--target", "onnx", "--imgsz", "33"]),
            ("opset-99", ["--target", "onnx", "--opset", "99"]),
            ("num-samples-0", ["--target", "onnx", "--num-samples", "0"]),
            ("target-bogus", ["--target", "tflite"]),
        ]
    ],
    Case("export-args-out-is-file", "cli", "qtseg-export --out FILE",
         """from qtseg.export.cli import main
(T / "f").write_text("")
cli(main, ["--target", "onnx", "--checkpoint", W / "ckpt", "--out", T / "f"])"""),
    Case("export-args-missing-ckpt", "cli", "qtseg-export --checkpoint MISSING",
         """from qtseg.export.cli import main
cli(main, ["--target", "onnx", "--checkpoint", T / "nope", "--out", T / "x"])"""),
    Case("export-args-bad-ckpt", "cli", "qtseg-export --checkpoint with garbage weights",
         """from qtseg.export.cli import main
c = copy(W / "ckpt", "c"); (c / "weights.safetensors").write_bytes(bytes(64)); rerecord(c)
cli(main, ["--target", "onnx", "--checkpoint", c, "--out", T / "x"])"""),
    Case("export-args-empty-samples", "cli", "qtseg-export --samples EMPTY_DIR",
         """from qtseg.export.cli import main
(T / "empty").mkdir()
cli(main, ["--target", "onnx", "--checkpoint", W / "ckpt", "--out", T / "x", "--samples", T / "empty"])""", slow=True),
    *[
        Case(f"bench-args-{name}", "cli", f"qtseg-bench {' '.join(args)}",
             f"""from qtseg.bench.cli import main
cli(main, [str(W / "exports")] + {args!r} + ["--out", str(T / "r"), "--no-plots"])""")
        for name, args in [
            ("batch-0", ["--batch", "0"]),
            ("iters-0", ["--iters", "0"]),
            ("threads-neg", ["--threads", "-1"]),
            ("num-images-0", ["--num-images", "0"]),
            ("row-timeout-0", ["--row-timeout", "0"]),
            ("device-tpu", ["--device", "tpu"]),
        ]
    ],
    Case("bench-args-missing-path", "cli", "qtseg-bench MISSING_DIR",
         """from qtseg.bench.cli import main
cli(main, [T / "nope", "--out", T / "r", "--no-plots"])"""),
    Case("bench-args-compare-corrupt", "cli", "qtseg-bench --compare CORRUPT --current CORRUPT",
         """from qtseg.bench.cli import main
(T / "bad.json").write_text("{not json")
cli(main, ["--compare", T / "bad.json", "--current", T / "bad.json"])"""),
]
