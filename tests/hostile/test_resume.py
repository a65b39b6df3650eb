"""``qtseg-train --resume`` never unpickles arbitrary objects; bad resume states are one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from qtseg.cli.train import main
from qtseg.training.trainer import ResumeError, load_resume_state, save_resume_state


class _Payload:
    """Pickles to a call of ``Path.touch(marker)``: proof that code ran when it is unpickled."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _malicious_state(path: Path, marker: Path) -> Path:
    torch.save({"model": {}, "optimizer": {}, "epoch": 0, "payload": _Payload(marker)}, path)
    return path


def test_the_payload_really_runs_when_unpickled_blindly(tmp_path):
    """Guard for the tests below: the file is a working exploit."""
    marker = tmp_path / "ran"
    torch.load(_malicious_state(tmp_path / "last.pt", marker), weights_only=False)
    assert marker.exists()


def test_a_malicious_resume_state_is_refused_without_running(tmp_path):
    marker = tmp_path / "ran"
    path = _malicious_state(tmp_path / "last.pt", marker)
    with pytest.raises(ResumeError, match="refused: it needs Python objects") as exc:
        load_resume_state(path, torch.device("cpu"))
    assert "\n" not in str(exc.value)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"garbage", "not a readable resume state"),
        (b"", "not a readable resume state"),
    ],
)
def test_unreadable_resume_state(tmp_path, content, message):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(ResumeError, match=message):
        load_resume_state(path, torch.device("cpu"))


@pytest.mark.parametrize(
    "state",
    [[1, 2], {"model": {}}, {"model": {}, "optimizer": {}, "generator": torch.zeros(1, dtype=torch.uint8),
                             "epoch": "3", "best_dice": 0.5, "history": []}],
)
def test_resume_state_with_missing_or_mistyped_keys(tmp_path, state):
    path = tmp_path / "last.pt"
    torch.save(state, path)
    with pytest.raises(ResumeError, match="not a qtseg resume state"):
        load_resume_state(path, torch.device("cpu"))


def test_round_trip_of_a_real_resume_state(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters())
    model(torch.rand(4, 3)).sum().backward()
    optimizer.step()
    gen = torch.Generator().manual_seed(3)
    path = tmp_path / "last.pt"
    save_resume_state(path, model, optimizer, gen, 4, 0.75, [{"epoch": 5, "loss": 0.1}])
    state = load_resume_state(path, torch.device("cpu"))
    assert state["epoch"] == 4 and state["best_dice"] == 0.75 and state["history"][0]["epoch"] == 5
    assert torch.equal(state["model"]["weight"], model.state_dict()["weight"])
    assert not list(tmp_path.glob(".last.pt.*"))  # written atomically, no temp left


def test_train_cli_refuses_a_malicious_last_pt(tmp_path, kvasir_mini, capsys):
    out = tmp_path / "run"
    out.mkdir()
    marker = tmp_path / "ran"
    _malicious_state(out / "last.pt", marker)
    rc = main(["--data", str(kvasir_mini), "--epochs", "1", "--batch", "4", "--imgsz", "64", "--width", "4",
               "--limit", "8", "--workers", "1", "--out", str(out), "--resume"])
    err = capsys.readouterr().err
    assert rc == 2 and "error: " in err and "refused" in err and "Traceback" not in err
    assert not marker.exists()
