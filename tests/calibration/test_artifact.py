"""Calibration-set artifact: save/load, hash check, and refusal of bad sets."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from qtseg.calibration import CalibrationError, CalibrationSet, load_set, save_set, validate_set
from qtseg.calibration.cli import main
from qtseg.preprocess import PreprocessSpec
from tests.calibration.conftest import SPEC32, random_set


def test_roundtrip_keeps_tensors_names_spec_and_id(tmp_path):
    calib = random_set(10)
    set_id = calib.set_id
    save_set(calib, tmp_path / "set")
    loaded = load_set(tmp_path / "set")
    assert loaded.set_id == set_id and loaded.names == calib.names and loaded.spec == calib.spec
    np.testing.assert_array_equal(np.asarray(loaded.x), calib.x)
    manifest = json.loads((tmp_path / "set" / "manifest.json").read_text())
    assert manifest["schema"] == "qtseg.calibration/1" and manifest["count"] == 10
    assert [b.shape[0] for b in loaded.batches(4)] == [4, 4, 2]


def test_modified_tensor_file_is_refused(tmp_path):
    save_set(random_set(8), tmp_path / "set")
    data = tmp_path / "set" / "x.npy"
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF
    data.write_bytes(bytes(raw))
    with pytest.raises(CalibrationError, match="SHA-256"):
        load_set(tmp_path / "set")


def test_not_a_set(tmp_path):
    with pytest.raises(CalibrationError, match="not a calibration set"):
        load_set(tmp_path)


def test_empty_set_is_refused():
    empty = CalibrationSet(x=np.zeros((0, 3, 32, 32), np.float32), spec=SPEC32, names=[])
    with pytest.raises(CalibrationError, match="empty"):
        validate_set(empty)


def test_too_small_set_is_refused():
    with pytest.raises(CalibrationError, match="has 7 image.*at least 8"):
        validate_set(random_set(7))
    validate_set(random_set(8))


def test_wrong_spec_is_refused():
    calib = random_set(8)
    with pytest.raises(CalibrationError, match="input_size"):
        validate_set(calib, PreprocessSpec(input_size=(64, 64)))
    other = dataclasses.replace(SPEC32, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))
    with pytest.raises(CalibrationError, match="mean.*std|different spec"):
        validate_set(calib, other)
    validate_set(calib, dataclasses.replace(SPEC32, class_names=("bg", "polyp")))  # names do not matter


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_nan_inf_is_refused(bad):
    calib = random_set(9)
    calib.x[5, 1, 3, 3] = bad
    with pytest.raises(CalibrationError, match="NaN/Inf.*r5"):
        validate_set(calib)


def test_cli_build_inspect_check(synthetic_dataset, tmp_path, capsys, tiny_checkpoint):
    out = tmp_path / "set"
    args = ["build", "--data", str(synthetic_dataset), "--out", str(out), "--checkpoint", str(tiny_checkpoint),
            "--imgsz", "32", "--size", "8", "--quiet"]
    assert main(args) == 0
    line = capsys.readouterr().out
    assert line.startswith("cal-") and "8 images" in line
    assert main(["inspect", str(out)]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["count"] == 8 and info["input_size"] == [32, 32]
    assert main(["check", str(out), "--checkpoint", str(tiny_checkpoint), "--imgsz", "32"]) == 0
    capsys.readouterr()
    assert main(["check", str(out), "--checkpoint", str(tiny_checkpoint)]) == 2  # checkpoint is 128x128
    err = capsys.readouterr().err
    assert err.startswith("error:") and "input_size: set [32, 32] vs model [128, 128]" in err


def test_cli_rejects_bad_input(synthetic_dataset, tmp_path, capsys, tiny_checkpoint):
    base = ["build", "--out", str(tmp_path / "s"), "--checkpoint", str(tiny_checkpoint), "--quiet"]
    assert main([*base, "--data", str(tmp_path / "missing")]) == 2
    assert "dataset folder not found" in capsys.readouterr().err
    assert main([*base, "--data", str(synthetic_dataset), "--imgsz", "33"]) == 2
    assert "multiple of 32" in capsys.readouterr().err
    assert main([*base, "--data", str(synthetic_dataset), "--split", "test", "--imgsz", "32"]) == 2
    assert "has 0 image" in capsys.readouterr().err
    assert main(["inspect", str(tmp_path)]) == 2


@pytest.mark.parametrize(("content", "needle"), [
    (b"[1, 2]", "not a JSON object"),
    (b'{"schema": NaN}', "NaN is not valid JSON"),
    (b"\xff\xff\xff", "malformed"),
])
def test_malformed_set_manifest_is_one_clear_error(tmp_path, content, needle):
    (tmp_path / "manifest.json").write_bytes(content)
    with pytest.raises(CalibrationError, match=needle):
        load_set(tmp_path)
