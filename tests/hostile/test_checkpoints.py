"""Hostile checkpoints: every bad folder is one CheckpointError line, never a traceback or a wrong model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import qtseg
from qtseg.checkpoint import (
    CheckpointError,
    load_checkpoint,
    read_checkpoint_info,
    save_checkpoint,
)
from qtseg.checkpoint import (
    main as checkpoint_main,
)
from qtseg.models import create
from qtseg.preprocess import PreprocessSpec
from qtseg.provenance import file_sha256

from .conftest import edit_json, rerecord


def _one_line(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text, text
    return text


def _flip_weight_byte(folder: Path) -> None:
    """Change the lowest mantissa byte of the last float of the weights (same size, finite)."""
    weights = folder / "weights.safetensors"
    data = bytearray(weights.read_bytes())
    data[-4] ^= 0x01
    weights.write_bytes(bytes(data))


def test_a_changed_weight_is_refused_and_opting_out_is_explicit(ckpt):
    _flip_weight_byte(ckpt)
    with pytest.raises(CheckpointError, match=r"files.weights: weights.safetensors does not match its recorded SHA-256"):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="SHA-256"):
        qtseg.load(ckpt)
    model, _, _ = load_checkpoint(ckpt, verify_hashes=False)  # the explicit opt-out
    assert not model.training


def test_a_truncated_weights_file_is_refused_even_without_hashing(ckpt):
    weights = ckpt / "weights.safetensors"
    weights.write_bytes(weights.read_bytes()[:-100])
    with pytest.raises(CheckpointError, match="bytes, checkpoint.json recorded"):
        load_checkpoint(ckpt, verify_hashes=False)


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.update(input_size=[64, 64]), r"input_size \[64, 64\] but the model was built for img_size \[128, 128\]"),
        (lambda d: d.update(num_classes=3), "num_classes=3 but the model has 2"),
        (lambda d: d.update(input_size=256), "input_size: must be a list"),
        (lambda d: d.update(input_size="big"), "input_size: must be a list"),
        (lambda d: d.update(mean=None), "mean: must be a list"),
        (lambda d: d.update(surprise=1), "unknown preprocess keys"),
    ],
)
def test_preprocess_json_must_fit_the_model(ckpt, edit, message):
    edit_json(ckpt / "preprocess.json", edit)
    with pytest.raises(CheckpointError, match="preprocess.json"):
        load_checkpoint(ckpt)  # the hash catches the edit first ...
    rerecord(ckpt)
    with pytest.raises(CheckpointError, match=message) as exc:
        load_checkpoint(ckpt)  # ... and with re-recorded hashes, the content check
    _one_line(exc)


def test_preprocess_json_that_is_not_an_object(ckpt):
    (ckpt / "preprocess.json").write_text("[1, 2]")
    rerecord(ckpt)
    with pytest.raises(CheckpointError, match="preprocess.json"):
        load_checkpoint(ckpt)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"\x00" * 64, "not a readable safetensors file"),
        (b"not a safetensors file at all", "not a readable safetensors file"),
    ],
)
def test_weights_that_are_not_safetensors(ckpt, content, message):
    (ckpt / "weights.safetensors").write_bytes(content)
    rerecord(ckpt)
    with pytest.raises(CheckpointError, match=message) as exc:
        load_checkpoint(ckpt)
    _one_line(exc)


def test_a_pickle_posing_as_weights_is_never_unpickled(ckpt, tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    import pickle

    (ckpt / "weights.safetensors").write_bytes(pickle.dumps({"x": Payload()}))
    rerecord(ckpt)
    with pytest.raises(CheckpointError, match="not a readable safetensors file"):
        load_checkpoint(ckpt)
    assert not marker.exists()


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda d: d.pop("model"), "missing model"),
        (lambda d: d.update(model="unet-9000"), "unknown model 'unet-9000'"),
        (lambda d: d.update(model=7), "model: must be a non-empty string"),
        (lambda d: d.update(config=[1]), "config: must be an object"),
        (lambda d: d["config"].update(width="8"), "config.width: must be an integer"),
        (lambda d: d["config"].update(depth=3), "config does not fit qtseg-v2"),
        (lambda d: d["config"].update(img_size=5), "config.img_size: must be a list"),
        (lambda d: d.pop("files"), "missing files"),
        (lambda d: d["files"].pop("weights"), "files: must list exactly weights, preprocess"),
        (lambda d: d["files"]["weights"].update(path="../weights.safetensors"), "files.weights.path"),
        (lambda d: d["files"]["weights"].update(sha256="abc"), "sha256"),
        (lambda d: d.update(schema="qtseg.checkpoint/9"), "is not 'qtseg.checkpoint/2'"),
        (lambda d: d.update(extra=1), "unknown keys extra"),
        (lambda d: d.update(metrics=[]), "metrics: must be an object"),
    ],
)
def test_malformed_checkpoint_json(ckpt, edit, message):
    edit_json(ckpt / "checkpoint.json", edit)
    with pytest.raises(CheckpointError, match=message) as exc:
        load_checkpoint(ckpt)
    _one_line(exc)


@pytest.mark.parametrize("content", ["{", "[]", "null", '"x"', "\udcff"])
def test_checkpoint_json_that_is_not_an_object(ckpt, content):
    (ckpt / "checkpoint.json").write_bytes(content.encode("utf-8", "surrogateescape"))
    with pytest.raises(CheckpointError, match="checkpoint.json"):
        load_checkpoint(ckpt)


def test_an_absurd_config_is_refused_on_the_header_before_allocation(ckpt):
    """width 65536 would need ~10^12 parameters; the header check refuses it without building it."""
    edit_json(ckpt / "checkpoint.json", lambda d: d["config"].update(width=65536))
    with pytest.raises(CheckpointError, match="weights do not fit qtseg-v2: .* has shape"):
        load_checkpoint(ckpt)


def test_nan_weights_are_refused(tmp_path):
    model = create("qtseg-v2", width=8, img_size=(64, 64)).eval()
    with torch.no_grad():
        next(model.parameters()).view(-1)[0] = float("nan")
    save_checkpoint(tmp_path / "nan", model, PreprocessSpec(input_size=(64, 64)))
    with pytest.raises(CheckpointError, match="contains NaN or Inf"):
        load_checkpoint(tmp_path / "nan")


def test_weights_symlinked_from_outside_are_refused(ckpt, tmp_path):
    outside = tmp_path / "elsewhere.safetensors"
    (ckpt / "weights.safetensors").rename(outside)
    (ckpt / "weights.safetensors").symlink_to(outside)
    with pytest.raises(CheckpointError, match="resolves outside"):
        load_checkpoint(ckpt)


def test_a_v1_checkpoint_names_the_fix_and_the_fix_works(ckpt, capsys):
    def downgrade(d):
        d["schema"] = "qtseg.checkpoint/1"
        d.pop("files")

    edit_json(ckpt / "checkpoint.json", downgrade)
    with pytest.raises(CheckpointError, match=rf"python -m qtseg.checkpoint upgrade {ckpt}") as exc:
        load_checkpoint(ckpt)
    _one_line(exc)
    before = file_sha256(ckpt / "weights.safetensors")
    assert checkpoint_main(["upgrade", str(ckpt)]) == 0
    info = read_checkpoint_info(ckpt)
    assert info.weights_sha256 == before == file_sha256(ckpt / "weights.safetensors")
    load_checkpoint(ckpt)
    assert checkpoint_main(["upgrade", str(ckpt)]) == 2  # already /2
    assert "nothing to upgrade" in capsys.readouterr().err


def test_upgrade_refuses_a_v1_folder_that_does_not_load(ckpt, capsys):
    def downgrade(d):
        d["schema"] = "qtseg.checkpoint/1"
        d.pop("files")

    edit_json(ckpt / "checkpoint.json", downgrade)
    edit_json(ckpt / "preprocess.json", lambda d: d.update(num_classes=3))
    assert checkpoint_main(["upgrade", str(ckpt)]) == 2
    assert "num_classes=3" in capsys.readouterr().err
    assert json.loads((ckpt / "checkpoint.json").read_text())["schema"] == "qtseg.checkpoint/1"


def test_the_bundled_checkpoint_records_its_hashes():
    info = read_checkpoint_info(qtseg.DEFAULT_CHECKPOINT)
    assert info.weights_sha256 == file_sha256(qtseg.DEFAULT_CHECKPOINT / "weights.safetensors")


def test_a_training_output_folder_means_its_best_checkpoint(ckpt, tmp_path):
    from qtseg.backends import open_backend

    run = tmp_path / "runs" / "train"
    run.mkdir(parents=True)
    ckpt.rename(run / "best")
    (run / "summary.json").write_text("{}")
    model, spec = qtseg.load(run)
    assert spec.input_size == (128, 128) and not model.training
    with open_backend(run) as backend:
        assert backend.input_metadata()[0].shape == (-1, 3, 128, 128)


def test_save_refuses_to_replace_a_folder_with_other_files(tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    model = create("qtseg-v2", width=8, img_size=(64, 64))
    with pytest.raises(CheckpointError, match=r"not part of a checkpoint \(notes.txt\)"):
        save_checkpoint(folder, model, PreprocessSpec(input_size=(64, 64)))
    assert (folder / "notes.txt").read_text() == "keep me"


def test_export_cli_reports_a_bad_checkpoint_in_one_line(ckpt, tmp_path, capsys):
    from qtseg.export.cli import main

    _flip_weight_byte(ckpt)
    rc = main(["--target", "onnx", "--checkpoint", str(ckpt), "--out", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert rc == 2 and err.startswith("error: ") and "SHA-256" in err and "Traceback" not in err
    assert not (tmp_path / "out" / "qtseg-v2_onnx").exists()
