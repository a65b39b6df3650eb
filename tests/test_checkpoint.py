import json

import pytest
import torch

from qtseg.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from qtseg.models import create
from qtseg.preprocess import PreprocessSpec


def test_roundtrip_fp32_and_fp16(tmp_path):
    model = create("qtseg-v2", width=8, img_size=(64, 64)).eval()
    spec = PreprocessSpec(input_size=(64, 64))
    x = torch.rand(1, 3, 64, 64)
    for half in (False, True):
        save_checkpoint(tmp_path / str(half), model, spec, metrics={"dice": 0.5}, half=half)
        loaded, spec2, info = load_checkpoint(tmp_path / str(half))
        assert spec2 == spec and info.model == "qtseg-v2" and info.metrics == {"dice": 0.5}
        assert not loaded.training
        with torch.no_grad():
            assert torch.allclose(loaded(x), model(x), atol=5e-3 if half else 1e-6)


def test_errors_are_one_clear_line(tmp_path, tiny_checkpoint):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a qtseg checkpoint"):
        load_checkpoint(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="holds model 'qtseg-v2', not 'qtseg-v1'"):
        load_checkpoint(tiny_checkpoint, expect_model="qtseg-v1")


def test_weights_of_another_model_are_refused(tmp_path, tiny_checkpoint):
    import shutil

    bad = tmp_path / "bad"
    shutil.copytree(tiny_checkpoint, bad)
    meta = json.loads((bad / "checkpoint.json").read_text())
    meta["config"]["width"] = 16  # weights are width 8
    (bad / "checkpoint.json").write_text(json.dumps(meta))
    with pytest.raises(CheckpointError, match="weights do not fit qtseg-v2"):
        load_checkpoint(bad)
