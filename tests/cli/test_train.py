import json

import pytest

from qtseg.checkpoint import load_checkpoint
from qtseg.cli.train import main


@pytest.mark.slow
def test_tiny_training_run_end_to_end(tmp_path, kvasir_mini, capsys):
    out = tmp_path / "run"
    args = ["--data", str(kvasir_mini), "--epochs", "2", "--batch", "4", "--imgsz", "64", "--width", "4",
            "--limit", "8", "--workers", "1", "--out", str(out)]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["metrics"]["test"]["dice"] >= 0.0 and len(summary["history"]) == 2
    _model, spec, info = load_checkpoint(out / "best")
    assert spec.input_size == (64, 64) and info.metrics["val"]["dice"] == summary["metrics"]["val"]["dice"]
    # resume continues after the last finished epoch
    assert main(args[:2] + ["--epochs", "3"] + args[4:] + ["--resume"]) == 0
    assert len(json.loads((out / "summary.json").read_text())["history"]) == 3
    assert "resumed from" in capsys.readouterr().err


def test_bad_arguments(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "nope"), "--imgsz", "64", "--out", str(tmp_path)]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert main(["--data", str(tmp_path), "--imgsz", "100"]) == 2
    assert "multiple of 32" in capsys.readouterr().err
