"""CLI fixtures: tiny exported artifacts of the tiny checkpoint and small labelled folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.artifacts import make_manifest


@pytest.fixture(scope="session")
def tiny_exports(tiny_checkpoint: Path, tmp_path_factory) -> Path:
    """``qtseg-export --target onnx,openvino-fp32 --dynamic-batch 4`` of the tiny checkpoint."""
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    from qtseg.export.cli import main

    out = tmp_path_factory.mktemp("exports")
    rc = main(["--checkpoint", str(tiny_checkpoint), "--target", "onnx,openvino-fp32",
               "--dynamic-batch", "4", "--num-samples", "2", "--out", str(out), "--quiet"])
    assert rc == 0
    return out


@pytest.fixture(scope="session")
def static_ov_artifact(tiny_exports: Path, tmp_path_factory) -> Path:
    """The tiny OpenVINO IR reshaped to a static batch of 1, with its own valid manifest."""
    import openvino as ov

    src = tiny_exports / "qtseg-v2_openvino-fp32"
    model = ov.Core().read_model(str(src / "model.xml"))
    model.reshape({model.inputs[0].get_any_name(): ov.PartialShape([1, 3, 128, 128])})
    out = tmp_path_factory.mktemp("static") / "qtseg-v2_openvino-static"
    out.mkdir()
    ov.save_model(model, str(out / "model.xml"), compress_to_fp16=False)
    make_manifest(out, fmt="openvino", files={"model": "model.xml", "weights": "model.bin"},
                  hw=128, batch=1)
    return out


def labelled_folder(root: Path, samples_dir: Path, count: int) -> Path:
    """``root/images`` + ``root/masks`` with the first ``count`` bundled samples."""
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for image in sorted((samples_dir / "images").glob("*.jpg"))[:count]:
        shutil.copy(image, root / "images" / image.name)
        mask = next((samples_dir / "masks").glob(image.stem + ".*"))
        shutil.copy(mask, root / "masks" / mask.name)
    return root
