"""Hand-made artifact folders with a valid ``qtseg.manifest/2`` (for loader and hostile-input tests).

The model files are real (tiny ONNX graphs, IRs converted from them); only
the provenance fields are placeholders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qtseg.manifest import (
    INFERENCE_PRECISION,
    ExportSettings,
    Manifest,
    ModelInfo,
    RuntimeSpec,
    TensorMeta,
    describe_files,
    write_manifest,
)
from qtseg.preprocess import PREPROCESS_FILENAME, PreprocessSpec

RUNTIME_OF = {"onnx": "onnxruntime", "openvino": "openvino", "tensorrt": "tensorrt_rtx", "aoti": "aoti"}
DEVICE_OF = {"onnx": None, "openvino": "cpu", "tensorrt": "cuda", "aoti": "cpu"}


def make_manifest(
    folder: Path,
    *,
    fmt: str,
    files: dict[str, str],
    precision: str = "fp32",
    hw: int = 32,
    num_classes: int = 2,
    batch: int | None = None,
    properties: dict[str, str] | None = None,
    runtime: str | None = None,
    model: ModelInfo | None = None,
) -> Manifest:
    """Write ``preprocess.json`` and a valid manifest for the model files already in ``folder``."""
    spec = PreprocessSpec(input_size=(hw, hw), num_classes=num_classes)
    spec.save(folder)
    if properties is None:
        properties = {INFERENCE_PRECISION: "f32"} if fmt == "openvino" else {}
    n = batch if batch is not None else -1
    manifest = Manifest(
        format=fmt,
        target=f"{fmt}-{precision}",
        precision=precision,
        runtime=RuntimeSpec(runtime or RUNTIME_OF[fmt], DEVICE_OF[fmt], properties),
        files=describe_files(folder, {**files, "preprocess": PREPROCESS_FILENAME}),
        inputs=(TensorMeta("image", (n, 3, hw, hw), "float32"),),
        outputs=(TensorMeta("logits", (n, num_classes, hw, hw), "float32"),),
        preprocess=spec,
        model=model or ModelInfo("tiny-conv", {"num_classes": num_classes}, "0" * 64, str(folder), "0" * 64),
        export=ExportSettings(batch, None if batch is not None else 8, False, 17),
        versions={"qtseg": "test"},
        git_sha=None,
        calibration={"set_id": "test"} if precision == "int8" else None,
        parity={},
        execution={},
    )
    write_manifest(folder, manifest)
    return manifest


def manifest_dict(folder: Path) -> dict[str, Any]:
    """The manifest of ``folder`` as a plain dict (to tamper with in tests)."""
    return json.loads((folder / "manifest.json").read_text())


def write_manifest_dict(folder: Path, data: dict[str, Any]) -> None:
    """Overwrite ``folder/manifest.json`` with ``data`` as is (no validation)."""
    (folder / "manifest.json").write_text(json.dumps(data, indent=2))


def read_manifest(folder: Path) -> dict[str, Any]:
    """The manifest of an exported artifact, verified as every loader verifies it, as a dict."""
    from qtseg.manifest import open_artifact

    return open_artifact(folder).manifest.to_dict()


def file_paths(manifest: dict[str, Any]) -> dict[str, str]:
    """``role -> relative path`` of a manifest dict."""
    return {role: entry["path"] for role, entry in manifest["files"].items()}
