"""Finding artifacts and their reference checkpoint (verified by SHA-256)."""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

from qtseg.bench.discover import discover, group_artifacts, resolve_checkpoint
from qtseg.manifest import ModelInfo, read_manifest_file
from qtseg.provenance import file_sha256

from ..artifacts import make_manifest
from ..backends.conftest import make_conv_onnx


def _artifact(root: Path, name: str, checkpoint: Path | str, sha: str, size: int = 128) -> Path:
    folder = root / name
    folder.mkdir(parents=True)
    make_conv_onnx(folder / "model.onnx", hw=size)
    model = ModelInfo("qtseg-v2", {"width": 8}, "h" * 64, str(checkpoint), sha)
    make_manifest(folder, fmt="onnx", files={"model": "model.onnx"}, hw=size, model=model)
    return folder


def _with_sha(manifest, sha: str):
    return dataclasses.replace(manifest, model=dataclasses.replace(manifest.model, checkpoint_sha256=sha))


def test_discover_artifacts_checkpoints_and_problems(tmp_path, tiny_checkpoint):
    _artifact(tmp_path / "exports", "b_onnx", tiny_checkpoint, "x")
    _artifact(tmp_path / "exports", "a_onnx", tiny_checkpoint, "x")
    (tmp_path / "exports" / "notes").mkdir()
    found = discover(
        [
            tmp_path / "exports",
            tiny_checkpoint,
            tmp_path / "missing",
            tmp_path / "exports" / "notes",
        ]
    )
    assert [p.name for p in found.artifacts] == ["a_onnx", "b_onnx"]
    assert found.checkpoints == [tiny_checkpoint]
    assert len(found.problems) == 2 and "not found" in found.problems[0]


def test_checkpoint_is_used_only_when_its_weights_match(tmp_path, tiny_checkpoint):
    sha = file_sha256(tiny_checkpoint / "weights.safetensors")
    good = _artifact(tmp_path, "good", tiny_checkpoint, sha)
    manifest = read_manifest_file(good)
    ckpt, note = resolve_checkpoint(manifest, good, None)
    assert ckpt == tiny_checkpoint and "verified" in note

    manifest = _with_sha(manifest, "0" * 64)
    ckpt, note = resolve_checkpoint(manifest, good, None)
    assert ckpt is None and "differ" in note
    ckpt, note = resolve_checkpoint(
        manifest, good, tiny_checkpoint
    )  # --checkpoint with other weights
    assert ckpt is None and "differ" in note


def test_moved_checkpoint_found_relative_to_the_artifact_or_by_override(tmp_path, tiny_checkpoint):
    sha = file_sha256(tiny_checkpoint / "weights.safetensors")
    art = _artifact(tmp_path / "exports", "onnx", "../ckpt", sha)
    manifest = read_manifest_file(art)
    ckpt, note = resolve_checkpoint(manifest, art, None)
    assert ckpt is None and "not found" in note and "--checkpoint" in note
    shutil.copytree(tiny_checkpoint, art / ".." / "ckpt")
    ckpt, _ = resolve_checkpoint(manifest, art, None)
    assert ckpt is not None and ckpt.resolve() == (tmp_path / "exports" / "ckpt").resolve()
    ckpt, _ = resolve_checkpoint(manifest, art, tiny_checkpoint)
    assert ckpt == tiny_checkpoint


def test_groups_split_by_input_size_and_weights(tmp_path, tiny_checkpoint):
    sha = file_sha256(tiny_checkpoint / "weights.safetensors")
    arts = [
        _artifact(tmp_path, "a", tiny_checkpoint, sha),
        _artifact(tmp_path, "b", tiny_checkpoint, sha),
        _artifact(tmp_path, "c", tiny_checkpoint, sha, size=256),
    ]
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "manifest.json").write_text("{not json")
    groups, bad = group_artifacts([*arts, tmp_path / "d"], None)
    assert [(g.key, [p.name for p in g.artifacts]) for g in groups] == [
        ("qtseg-v2@128x128", ["a", "b"]),
        ("qtseg-v2@256x256", ["c"]),
    ]
    assert all(g.checkpoint == tiny_checkpoint for g in groups)
    assert [p.name for p, _ in bad] == ["d"]
