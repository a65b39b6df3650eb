"""Non-finite values (issue 12, items 5 and 7, C++ side): NaN/Inf inputs are refused, NaN/Inf
logits are an error instead of a mask, and qtseg_infer reports a failed image, goes on with
the others, prints a summary and exits 1 (``--strict`` stops at the first failure)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.cpp.helpers import cli_args, cli_fails, read_f32, run
from tests.cpp.tiny_models import SIZE, tiny_openvino, with_nan_weights

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def nan_weights_tiny(tiny_ov_artifact, tmp_path_factory) -> Path:
    return with_nan_weights(tiny_ov_artifact, tmp_path_factory.mktemp("nanw") / "artifact")


@pytest.fixture(scope="module")
def nan_for_dark(tmp_path_factory) -> Path:
    """Logits are NaN exactly for images whose mean pixel value is below 0.5."""
    return tiny_openvino(tmp_path_factory.mktemp("dark") / "artifact", nan_below=0.5)


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("nf-images")
    rng = np.random.default_rng(3)
    paths = {}
    for name, low, high in [("bright1", 200, 256), ("dark", 0, 60), ("bright2", 180, 256)]:
        paths[name] = out / f"{name}.png"
        Image.fromarray(rng.integers(low, high, (40, 52, 3), dtype=np.uint8)).save(paths[name])
    paths["garbage"] = out / "garbage.png"
    paths["garbage"].write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    return paths


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_input_is_refused(cpp_build, tiny_ov_artifact, tmp_path, value):
    x = np.random.default_rng(0).random((3, 3, *SIZE), dtype=np.float32)
    x[1, 2, 5, 7] = value
    x.astype("<f4").tofile(tmp_path / "x.bin")
    line = cli_fails(
        cpp_build.cli,
        "--artifact",
        tiny_ov_artifact,
        "--input-tensor",
        tmp_path / "x.bin",
        "--input-shape",
        f"3,3,{SIZE[0]},{SIZE[1]}",
        "--dump-logits",
        tmp_path / "y.bin",
    )
    assert (
        "input tensor holds NaN or infinite values (sample 1 of the batch); refused before inference"
        in line
    )
    assert not (tmp_path / "y.bin").exists()


def test_nan_weights_are_an_error_not_a_mask(cpp_build, nan_weights_tiny, images, tmp_path):
    line = cli_fails(
        cpp_build.cli,
        "--artifact",
        nan_weights_tiny,
        "--input",
        images["bright1"],
        "--output",
        tmp_path / "mask.png",
    )
    assert "model output 'logits' holds NaN or infinite values" in line
    assert not (tmp_path / "mask.png").exists()


def test_nan_weights_in_the_exported_model(cpp_build, ov_artifact, sample_jpegs, tmp_path):
    broken = with_nan_weights(ov_artifact.path, tmp_path / "artifact")
    line = cli_fails(
        cpp_build.cli,
        "--artifact",
        broken,
        "--input",
        sample_jpegs[0],
        "--output",
        tmp_path / "m.png",
    )
    assert "model output 'logits' holds NaN or infinite values (sample 0 of the batch)" in line
    assert not (tmp_path / "m.png").exists()


def _run_three(cpp_build, artifact: Path, names: list[str], images, tmp: Path, *extra: str):
    inputs = [images[n] for n in names]
    masks = [tmp / f"{n}_mask.png" for n in names]
    proc = run(
        [
            cpp_build.cli,
            "--artifact",
            artifact,
            *cli_args(inputs, masks),
            "--dump-logits",
            tmp / "y.bin",
            "--mask-values",
            "labels",
            *extra,
        ]
    )
    return proc, masks


def test_one_nan_image_fails_the_others_are_segmented(cpp_build, nan_for_dark, images, tmp_path):
    proc, masks = _run_three(
        cpp_build, nan_for_dark, ["bright1", "dark", "bright2"], images, tmp_path
    )
    assert proc.returncode == 1, proc.stderr
    errors = proc.stderr.splitlines()
    assert len(errors) == 1 and errors[0].startswith("qtseg_infer: error: ")
    assert str(images["dark"]) in errors[0] and "NaN" in errors[0]
    assert f"summary: 2 of 3 images segmented, 1 failed: {images['dark']}" in proc.stdout
    assert masks[0].is_file() and masks[2].is_file() and not masks[1].exists()

    # The surviving images get exactly what a run without the bad one gives.
    ok_dir = tmp_path / "ok"
    ok_dir.mkdir()
    clean, clean_masks = _run_three(cpp_build, nan_for_dark, ["bright1", "bright2"], images, ok_dir)
    assert clean.returncode == 0, clean.stderr
    assert "summary: 2 of 2 images segmented" in clean.stdout
    shape = (2, 2, *SIZE)
    assert np.array_equal(read_f32(tmp_path / "y.bin", shape), read_f32(ok_dir / "y.bin", shape))
    for mine, ref in zip([masks[0], masks[2]], clean_masks):
        assert np.array_equal(np.asarray(Image.open(mine)), np.asarray(Image.open(ref)))


def test_strict_stops_at_the_nan_image(cpp_build, nan_for_dark, images, tmp_path):
    proc, masks = _run_three(
        cpp_build, nan_for_dark, ["bright1", "dark", "bright2"], images, tmp_path, "--strict"
    )
    assert proc.returncode == 1
    assert len(proc.stderr.splitlines()) == 1 and str(images["dark"]) in proc.stderr
    assert "summary" not in proc.stdout
    assert not any(m.exists() for m in masks)


def test_undecodable_image_does_not_abort_the_run(cpp_build, tiny_ov_artifact, images, tmp_path):
    proc, masks = _run_three(
        cpp_build, tiny_ov_artifact, ["bright1", "garbage", "bright2"], images, tmp_path
    )
    assert proc.returncode == 1
    errors = proc.stderr.splitlines()
    assert len(errors) == 1 and "cannot decode" in errors[0] and "garbage.png" in errors[0]
    assert f"summary: 2 of 3 images segmented, 1 failed: {images['garbage']}" in proc.stdout
    assert masks[0].is_file() and masks[2].is_file() and not masks[1].exists()


def test_strict_stops_at_the_undecodable_image(cpp_build, tiny_ov_artifact, images, tmp_path):
    proc, masks = _run_three(
        cpp_build, tiny_ov_artifact, ["bright1", "garbage", "bright2"], images, tmp_path, "--strict"
    )
    assert proc.returncode == 1 and "garbage.png" in proc.stderr
    assert not any(m.exists() for m in masks)


def test_all_good_images_exit_zero_with_a_summary(cpp_build, tiny_ov_artifact, images, tmp_path):
    proc, masks = _run_three(cpp_build, tiny_ov_artifact, ["bright1", "dark"], images, tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "summary: 2 of 2 images segmented\n" in proc.stdout
    assert all(m.is_file() for m in masks)
