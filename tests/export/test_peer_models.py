"""Peer models (HRMedSeg, IC-MoE) through ``qtseg-export`` and ``qtseg-bench`` at reduced size.

One ``qtseg-export --target onnx,onnx-fp16,openvino-fp32,openvino-fp16,trtrtx-fp16``
per model (one shared ONNX export and PyTorch reference); every artifact must
pass the parity gate on the bundled Kvasir-SEG samples. The TensorRT-RTX
engine is built ahead of time here; it cannot run without a GPU, so its gate
runs the engine's exact ONNX graph on ONNX Runtime and the manifest says so.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

import qtseg
from tests.artifacts import file_paths
from tests.conftest import randomize_batchnorm
from tests.export.conftest import run_cli
from tests.models.conftest import HRMEDSEG_TINY

TARGETS = ("onnx", "onnx-fp16", "openvino-fp32", "openvino-fp16", "trtrtx-fp16")

HRMEDSEG_SMALL = {**HRMEDSEG_TINY, "img_size": 128}
ICMOE_TINY = {
    "img_size": 64,
    "patch_size": 16,
    "embed_dim": 32,
    "depth": 2,
    "num_heads": 2,
    "window_size": 2,
    "global_attn_indexes": (1,),
    "prompt_dim": 32,
    "decoder_depth": 1,
    "decoder_heads": 2,
    "decoder_mlp_dim": 64,
    "sgcl_dim": 16,
}


def _checkpoint(root: Path, name: str, config: dict) -> Path:
    from qtseg.checkpoint import save_checkpoint
    from qtseg.models import create
    from qtseg.preprocess import PreprocessSpec

    torch.manual_seed(0)
    model = create(name, **config).eval()
    randomize_batchnorm(model)
    size = config["img_size"]
    return save_checkpoint(root / name, model, PreprocessSpec(input_size=(size, size)))


@pytest.fixture(scope="module")
def peer_exports(tmp_path_factory) -> dict[str, tuple[Path, Path, object]]:
    """``{model: (checkpoint, exports dir, CLI run)}`` for both peers."""
    root = tmp_path_factory.mktemp("peers")
    runs = {}
    for name, config in (("hrmedseg", HRMEDSEG_SMALL), ("icmoe", ICMOE_TINY)):
        ckpt = _checkpoint(root / "ckpt", name, config)
        out = root / "exports"
        run = run_cli(["--target", ",".join(TARGETS), "--checkpoint", str(ckpt),
                       "--model", name, "--out", str(out)])
        runs[name] = (ckpt, out, run)
    return runs


def test_target_list_resolves_in_order() -> None:
    from qtseg.export.targets import TargetError, resolve

    assert [t.name for t in resolve("trtrtx-fp16,onnx,trtrtx-fp16")] == ["trtrtx-fp16", "onnx"]
    with pytest.raises(TargetError, match="unknown target 'tflite'"):
        resolve("onnx,tflite")


def _manifest(out: Path, model: str, target: str) -> dict:
    return json.loads((out / f"{model}_{target}" / "manifest.json").read_text())


@pytest.mark.parametrize("model", ["hrmedseg", "icmoe"])
def test_every_target_passes_the_gate(peer_exports, model: str) -> None:
    ckpt, out, run = peer_exports[model]
    assert run.rc == 0, run.err[-3000:]
    for target in TARGETS:
        # summary table of a target list; an engine that could not run here is "built, not run"
        status = r"built, not run" if target.startswith("trt") else "ok"
        assert re.search(rf"^{target}\s+{status}\s", run.out, re.MULTILINE), run.out
        m = _manifest(out, model, target)
        size = json.loads((ckpt / "checkpoint.json").read_text())["config"]["img_size"]
        assert m["model"]["name"] == model and m["target"] == target
        assert m["inputs"][0]["shape"] == [1, 3, *size]
        assert m["outputs"][0]["shape"] == [1, 2, *size]
        parity = m["parity"]
        assert parity["verified"] and parity["passed"] is True, parity
        assert parity["results"] and all(r["passed"] for r in parity["results"])
        assert all(np.isfinite(r["max_abs_diff"]) for r in parity["results"])
        assert {r["precision"] for r in parity["results"]} == {m["precision"]}
        for rel in file_paths(m).values():
            assert (out / f"{model}_{target}" / rel).stat().st_size > 0


def test_engine_built_not_run(peer_exports) -> None:
    for model in ("hrmedseg", "icmoe"):
        m = _manifest(peer_exports[model][1], model, "trtrtx-fp16")
        assert m["details"]["tensorrt"]["engine_bytes"] > 0
        assert "model.engine on TensorRT-RTX" in m["execution"]["not_run"]
        assert "(the engine's source graph) on onnxruntime" in m["execution"]["verified_with"]


def test_icmoe_records_its_fp16_block_list(peer_exports) -> None:
    out = peer_exports["icmoe"][1]
    icmoe = _manifest(out, "icmoe", "onnx-fp16")["details"]["fp16"]["fp32_block_list"]
    assert icmoe["fp32_after"] == ["Sigmoid"]
    hr = _manifest(peer_exports["hrmedseg"][1], "hrmedseg", "onnx-fp16")
    assert "fp32_after" not in hr["details"]["fp16"]["fp32_block_list"]


def _make_confident(model: torch.nn.Module, gain: float = 600.0) -> None:
    """Scale each expert's mask hypernetwork so that the fused probability saturates.

    Random SAM decoders give logits near 0 (p ~ 0.5 everywhere); a trained
    IC-MoE is confident, and that is where its logit head
    ``0.5 * (log p - log(1 - p))`` is fragile.
    """
    gen = torch.Generator().manual_seed(1)
    for name, module in model.named_modules():
        if name.endswith("output_hypernetworks_mlps.0.layers.2"):
            module.weight.data.mul_(gain)
            module.bias.data.copy_(torch.randn(module.bias.shape, generator=gen))


@pytest.fixture(scope="module")
def confident_icmoe() -> dict:
    """A saturated tiny IC-MoE: its FP32 ONNX graph, PyTorch logits and samples."""
    from qtseg.backends.torch_backend import TorchBackend
    from qtseg.evaluation import SampleSet, infer_logits
    from qtseg.export.onnx_graph import export_fp32
    from qtseg.export.wrapper import ExportIO
    from qtseg.models import create
    from qtseg.preprocess import PreprocessSpec

    torch.manual_seed(0)
    model = create("icmoe", **ICMOE_TINY).eval()
    _make_confident(model)
    spec = PreprocessSpec(input_size=(64, 64))
    samples = SampleSet.from_folder(qtseg.SAMPLES_DIR / "images", spec, limit=4)
    with TorchBackend(model, input_size=spec.input_size) as ref:
        reference = infer_logits(ref, samples.x)
    assert max(float(np.abs(r).max()) for r in reference) > 6.0  # p within 1e-5 of 0 or 1
    graph = export_fp32(model, ExportIO(input_size=(64, 64), num_classes=2))
    return {"graph": graph, "spec": spec, "samples": samples, "reference": reference}


def _ort_parity(case: dict, graph, precision: str):
    import onnxruntime as ort

    from qtseg.evaluation import compare_logits

    session = ort.InferenceSession(graph.SerializeToString(), providers=["CPUExecutionProvider"])
    x = case["samples"].x
    logits = [session.run(None, {"image": x[i : i + 1]})[0] for i in range(len(x))]
    return compare_logits(case["reference"], logits, case["samples"], case["spec"], precision=precision)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")  # Inf logits
def test_confident_icmoe_fp16_needs_its_block_list(confident_icmoe) -> None:
    """With the default block list the FP16 head gives Inf; with IC-MoE's it passes the gate."""
    from qtseg.export.onnx_fp16 import DEFAULT_BLOCK_LIST, block_list_for, convert_to_fp16

    graph = confident_icmoe["graph"]
    naive = _ort_parity(confident_icmoe, convert_to_fp16(graph, block=DEFAULT_BLOCK_LIST), "fp16")
    assert not naive.passed and any("NaN/Inf" in f for f in naive.failures)
    fixed = convert_to_fp16(graph, block=block_list_for("icmoe"))
    result = _ort_parity(confident_icmoe, fixed, "fp16")
    assert result.passed, result.summary()


def test_confident_icmoe_fp32_masks_agree(confident_icmoe) -> None:
    result = _ort_parity(confident_icmoe, confident_icmoe["graph"], "fp32")
    assert result.agreement == 1.0 and result.mean_abs_diff < 1e-4, result.summary()


@pytest.mark.xfail(strict=True, raises=AssertionError, reason=(
    "IC-MoE returns 0.5*(log p - log(1 - p)) with p clamped to [1e-6, 1 - 1e-6]: a runtime's "
    "sigmoid is accurate to ~1e-7 absolute, i.e. to ~10% relative for 1 - p near 1e-6, so "
    "confident pixels differ by up to ~0.05 in FP32 (masks agree 100%). Measured: clamp 1e-4 "
    "gives 5e-4 and passes; docs/peers-comparison.md, 'Known limit'"))
def test_confident_icmoe_fp32_logits_within_gate(confident_icmoe) -> None:
    result = _ort_parity(confident_icmoe, confident_icmoe["graph"], "fp32")
    assert result.max_abs_diff <= 1e-3, result.summary()


def test_bench_reports_peer_artifacts(peer_exports, tmp_path) -> None:
    """qtseg-bench groups both peers, counts params/MACs and scores each artifact."""
    from qtseg.bench.cli import main as bench_main

    paths = [str(peer_exports[m][1] / f"{m}_onnx") for m in ("hrmedseg", "icmoe")]
    report_dir = tmp_path / "bench"
    rc = bench_main([*paths, "--iters", "2", "--warmup", "1", "--e2e-iters", "0", "--no-plots",
                     "--no-isolate", "--quiet", "--out", str(report_dir)])
    assert rc == 0
    report = json.loads((report_dir / "report.json").read_text())
    models = {m["name"]: m for m in report["models"]}
    assert set(models) == {"hrmedseg", "icmoe"}
    assert all(m["params"] > 0 and m["macs"] > 0 for m in models.values())
    rows = [r for r in report["rows"] if r["kind"] == "artifact"]
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows)
    assert all(r["parity"]["passed"] and r["latency"][0]["p50_ms"] > 0 for r in rows)
