"""End to end: every installable target from the tiny checkpoint, verified and reloadable."""

from __future__ import annotations

import importlib.util
import json

import numpy as np
import pytest
from ..artifacts import file_paths, read_manifest
from qtseg.export.targets import TARGETS

from qtseg.backends import NotExecutableHere, open_backend
from qtseg.backends.tensorrt_backend import cuda_device_problem

pytestmark = pytest.mark.slow
# The targets of the export issue (other rows of the table have their own tests).
ISSUE_TARGETS = ("onnx", "onnx-fp16", "openvino-fp32", "openvino-fp16", "trt-fp16", "trt-fp32",
                 "trtrtx-fp16", "trtrtx-fp32")
BUILT_HERE = [n for n in ISSUE_TARGETS if not TARGETS[n].missing()]
TOLERANCE = {"fp32": 1e-4, "fp16": 0.05}


def test_all_succeeds_with_a_summary(export_all):
    out, run = export_all
    assert run.rc == 0, run.err
    for name in ISSUE_TARGETS:
        assert name in run.out
    assert "trtrtx-fp16" in BUILT_HERE, "TensorRT-RTX must be installed in CI"
    if importlib.util.find_spec("tensorrt") is None:
        assert "skipped" in run.out and "pip install tensorrt" in run.out
        assert "trtrtx-fp16 builds with the pip-installable TensorRT-RTX instead" in run.out
    # progress: one line per step on stderr
    assert "[onnx] export PyTorch -> ONNX" in run.err and "[trtrtx-fp16] build TensorRT-RTX engine" in run.err
    # every installable target is in place, and no staging leftovers (hidden folders)
    names = {p.name for p in out.iterdir()}
    assert {f"qtseg-v2_{n}" for n in BUILT_HERE} <= names
    assert not [n for n in names if n.startswith(".")]


@pytest.mark.parametrize("name", BUILT_HERE)
def test_artifact_layout_and_manifest(export_all, name, tiny_checkpoint):
    out, _ = export_all
    folder = out / f"qtseg-v2_{name}"
    manifest = read_manifest(folder)
    target = TARGETS[name]
    assert manifest["target"] == name and manifest["format"] == target.format
    assert manifest["precision"] == target.precision
    for rel in file_paths(manifest).values():
        assert (folder / rel).is_file()
    assert json.loads((folder / "preprocess.json").read_text()) == manifest["preprocess"]
    assert manifest["inputs"] == [{"name": "image", "shape": [1, 3, 128, 128], "dtype": "float32"}]
    assert manifest["outputs"] == [{"name": "logits", "shape": [1, 2, 128, 128], "dtype": "float32"}]
    assert {"torch", "onnx", "onnxruntime", "qtseg"} <= set(manifest["versions"])
    assert len(manifest["model"]["checkpoint_sha256"]) == 64 and len(manifest["model"]["config_hash"]) == 64
    parity = manifest["parity"]
    assert parity["verified"] and parity["passed"] and parity["results"]
    assert len(parity["samples"]["names"]) == 8
    for result in parity["results"]:
        assert result["num_images"] == 8 and result["dice_basis"] == "ground truth"
        assert result["passed"] and not result["failures"]
    assert manifest["execution"]["verified_with"]


@pytest.mark.parametrize("name", [n for n in BUILT_HERE if TARGETS[n].format != "tensorrt"])
def test_reload_and_predict(export_all, name, tiny_checkpoint):
    """Export -> reload through open_backend -> predict, against PyTorch."""
    import torch

    from qtseg.checkpoint import load_checkpoint

    out, _ = export_all
    model, _, _ = load_checkpoint(tiny_checkpoint)
    x = np.random.default_rng(3).random((1, 3, 128, 128), dtype=np.float32)
    with torch.no_grad():
        expected = model(torch.from_numpy(x)).numpy()
    with open_backend(out / f"qtseg-v2_{name}") as be:
        got = be.infer(x)
    assert np.abs(got - expected).max() < TOLERANCE[TARGETS[name].precision]


def test_tensorrt_artifacts_record_what_ran(export_all):
    out, _ = export_all
    for name in ("trtrtx-fp16", "trtrtx-fp32"):
        folder = out / f"qtseg-v2_{name}"
        manifest = read_manifest(folder)
        trt = manifest["details"]["tensorrt"]
        assert trt["library"] == "tensorrt_rtx" and trt["strongly_typed"]
        assert trt["compute_capabilities"] == ["sm_80", "sm_86", "sm_89", "sm_120"]
        assert file_paths(manifest) == {"engine": "model.engine", "onnx": "model.onnx", "preprocess": "preprocess.json"}
        labels = [r["label"] for r in manifest["parity"]["results"]]
        assert any("onnxruntime" in label for label in labels)
        if cuda_device_problem() is not None:
            assert "not executable here" in manifest["execution"]["not_run"]
            with pytest.raises(NotExecutableHere):
                open_backend(folder, device="cuda")
    # the FP16 engine was built from exactly the onnx-fp16 graph
    fp16_onnx = (out / "qtseg-v2_onnx-fp16" / "model.onnx").read_bytes()
    assert (out / "qtseg-v2_trtrtx-fp16" / "model.onnx").read_bytes() == fp16_onnx


def test_onnx_graph_contents(export_all, tiny_checkpoint):
    import onnx
    from qtseg.export.onnx_graph import read_metadata

    from qtseg.checkpoint import read_checkpoint_info

    out, _ = export_all
    fp32 = onnx.load(str(out / "qtseg-v2_onnx" / "model.onnx"))
    assert max(o.version for o in fp32.opset_import if o.domain in ("", "ai.onnx")) == 17
    ops = [n.op_type for n in fp32.graph.node]
    assert ops.count("LayerNormalization") == 19  # one op per LayerNorm, not a decomposition
    meta = read_metadata(fp32)
    assert meta["model"] == "qtseg-v2" and meta["graph"] == "fp32"
    assert meta["checkpoint_sha256"] == read_checkpoint_info(tiny_checkpoint).weights_sha256
    assert json.loads(meta["preprocess"])["input_size"] == [128, 128]

    fp16 = onnx.load(str(out / "qtseg-v2_onnx-fp16" / "model.onnx"))
    weights = [t for t in fp16.graph.initializer if len(t.dims) >= 2]
    share = np.mean([t.data_type == onnx.TensorProto.FLOAT16 for t in weights])
    assert share > 0.9
    assert json.loads(read_metadata(fp16)["fp32_block_list"])["op_types"] == ["LayerNormalization"]
