"""Find where loading an AOTInductor package crashes (issue 16), one variant per process.

    python tools/gpu/aoti_probe.py build DIR            # tiny CPU (+ CUDA) packages, no load
    python tools/gpu/aoti_probe.py load PKG [options]   # load (and run) one package
    python tools/gpu/aoti_probe.py buildload DIR --device cpu|cuda

Every step prints a marker and flushes first, so the last marker before a
crash names the step that crashed (run with ``python -X faulthandler``).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.backends import aoti_packages as pk  # noqa: E402 - needs the repo on sys.path


def mark(text: str) -> None:
    """Print one progress marker immediately."""
    print(f"[probe {time.strftime('%H:%M:%S')}] {text}", flush=True)


# Inductor config variants tried against the load crash (``build --variants``).
VARIANTS: dict[str, dict] = {
    "default": {},
    "blob": {
        "aot_inductor.package_constants_in_so": False,
        "aot_inductor.package_constants_on_disk_format": "binary_blob",
    },
    "cconsts": {"aot_inductor.use_consts_asm_build": False},
    "nopch": {"aot_inductor.precompile_headers": False},
    "mmap": {"aot_inductor.force_mmap_weights": True},
    "nofp": {"aot_inductor.enable_frame_pointer": False},
}


def build_one(path: Path, device: str, metadata: bool, extra: dict | None = None) -> Path:
    """Compile :func:`pk.tiny_net` for ``device`` (dynamic batch 1..4) into ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    net = pk.tiny_net().to(device)
    example = torch.rand(2, 3, pk.HW, pk.HW, device=device)
    dim = torch.export.Dim("batch", min=1, max=pk.MAX_BATCH)
    program = torch.export.export(net, (example,), dynamic_shapes=({0: dim},), strict=False)
    configs = dict(extra or {})
    if metadata:
        configs["aot_inductor.metadata"] = {
            "qtseg.input": json.dumps(pk.INPUT_META),
            "qtseg.max_batch": str(pk.MAX_BATCH),
        }
    mark(f"compile {path.name} ({device}, metadata={metadata}, {extra})")
    torch._inductor.aoti_compile_and_package(
        program, package_path=str(path), inductor_configs=configs
    )
    mark(f"compiled {path.name}: {path.stat().st_size} bytes")
    return path


def _loader(pkg: Path, runners: int, index: int):
    mark("AOTIModelPackageLoader(...)")
    loader = torch._C._aoti.AOTIModelPackageLoader(str(pkg), "model", False, runners, index)
    mark("constructed")
    return lambda x: loader.run([x])


def _dlopen(pkg: Path) -> None:
    """Only ``dlopen`` the package's shared library (relocations, static initialisers)."""
    with zipfile.ZipFile(pkg) as z:
        mark(f"package files: {z.namelist()}")
        name = next(n for n in z.namelist() if n.endswith(".so"))
        dst = Path(tempfile.mkdtemp()) / Path(name).name
        dst.write_bytes(z.read(name))
    mark(f"dlopen {dst}")
    ctypes.CDLL(str(dst), mode=os.RTLD_NOW | os.RTLD_LOCAL)
    mark("dlopen ok")


def load(pkg: Path, how: str, runners: int, device: str) -> None:
    """Load ``pkg`` the way ``how`` names and run it once; compare with PyTorch."""
    index = 0 if device == "cuda" else -1
    if os.environ.get("SEGV_SO"):
        ctypes.CDLL(os.environ["SEGV_SO"]).segv_trace_install()
        mark("segv trace handler installed")
    if how == "dlopen":
        _dlopen(pkg)
        return
    if how in ("meta-then-api", "steps"):
        mark("load_metadata_from_package")
        meta = torch._C._aoti.AOTIModelPackageLoader.load_metadata_from_package(str(pkg), "model")
        mark(f"metadata: {dict(meta)}")
    if how in ("api", "meta-then-api"):
        mark("aoti_load_package")
        call = torch._inductor.aoti_load_package(str(pkg), device_index=index)
    elif how == "steps":  # what _load_aoti does, one marker per step
        from torch._inductor.codecache import get_device_information

        mark("get_device_information")
        mark(f"device information: {get_device_information(dict(meta)['AOTI_DEVICE_KEY'])}")
        call = _loader(pkg, runners, index)
    else:  # "loader": the C++ loader alone (no Python-side device check)
        call = _loader(pkg, runners, index)
    x = torch.rand(3, 3, pk.HW, pk.HW)
    mark("run")
    with torch.inference_mode():
        out = call(x.to(device))
    out = out[0] if isinstance(out, (list, tuple)) else out
    diff = float((out.float().cpu() - torch.from_numpy(pk.reference(x.numpy()))).abs().max())
    mark(f"ran: out {tuple(out.shape)}, max |diff| vs eager {diff:.2e}")


def main() -> int:
    """Entry point (see the module docstring)."""
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["build", "load", "buildload"])
    p.add_argument("path")
    p.add_argument("--how", default="api", choices=["api", "meta-then-api", "steps", "loader", "dlopen"])
    p.add_argument("--runners", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--pre", default="none", choices=["none", "onnxruntime", "qtseg", "compile", "amx", "isa"])
    p.add_argument("--variants", default="default")
    p.add_argument("--devices", default="cpu,cuda")
    p.add_argument("--copy-to", default=None, help="copy the package here and load the copy")
    args = p.parse_args()
    mark(f"torch {torch.__version__}, cuda available {torch.cuda.is_available()}")
    if args.pre == "onnxruntime":
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    elif args.pre == "qtseg":
        import qtseg.backends  # noqa: F401
    elif args.pre == "amx":  # what Inductor's ISA check does in-process on an AMX CPU
        mark(f"torch.cpu._init_amx() -> {torch.cpu._init_amx()}")
    elif args.pre == "isa":
        from torch._inductor.cpu_vec_isa import pick_vec_isa

        mark(f"pick_vec_isa() -> {pick_vec_isa()}")
    elif args.pre == "compile":
        fn = torch.compile(lambda t: torch.sin(t) * 2 + 1)
        fn(torch.rand(64))
    mark(f"pre-step {args.pre} done")
    path = Path(args.path)
    if args.mode == "build":
        for name in args.variants.split(","):
            for device in args.devices.split(","):
                try:
                    build_one(path / f"{device}_{name}.pt2", device, True, VARIANTS[name])
                except Exception as exc:  # noqa: BLE001 - a probe: report and go on
                    mark(f"build {device}_{name} failed: {type(exc).__name__}: {exc}"[:400])
        return 0
    if args.mode == "buildload":
        path = build_one(path / f"same_{args.device}.pt2", args.device, metadata=True)
    if args.copy_to:
        dst = Path(args.copy_to) / path.name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(path, dst)
        path = dst
    load(path, args.how, args.runners, args.device)
    mark("done")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
