"""C++ decoding + preprocessing equals qtseg.imageio / PreprocessSpec.preprocess byte for byte.

Runs ``qtseg_infer --spec preprocess.json`` (preprocessing only, no model) and
compares its raw dumps with the Python reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from qtseg.imageio import read_image
from qtseg.preprocess import PreprocessSpec
from tests.cpp.helpers import cli_args, read_f32, run_checked

pytestmark = pytest.mark.slow

SPECS = {
    "default-512": PreprocessSpec(),
    "bgr-imagenet-96x160": PreprocessSpec(
        input_size=(96, 160),
        channel_order="BGR",
        mean=(0.406, 0.456, 0.485),
        std=(0.225, 0.224, 0.229),
    ),
    "scale1-64x32": PreprocessSpec(
        input_size=(64, 32),
        scale=1.0,
        mean=(100.0, 110.5, 120.25),
        std=(50.0, 60.0, 70.0),
        num_classes=4,
    ),
}


def _cpp_preprocess(
    cpp_build, spec: PreprocessSpec, images: list[Path], tmp: Path
) -> tuple[list[np.ndarray], np.ndarray]:
    """C++ decoded images (list of (H, W, 3) uint8) and preprocessed batch (N, 3, H, W)."""
    spec_file = spec.save(tmp / "preprocess.json")
    run_checked(
        [
            cpp_build.cli,
            "--spec",
            spec_file,
            *cli_args(images),
            "--dump-decoded",
            tmp / "decoded.bin",
            "--dump-input",
            tmp / "input.bin",
        ],
        what="qtseg_infer --spec",
    )
    raw = np.fromfile(tmp / "decoded.bin", dtype=np.uint8)
    decoded, offset = [], 0
    for path in images:
        h, w = read_image(path).shape[:2]  # sizes only; pixel equality is asserted separately
        decoded.append(raw[offset : offset + h * w * 3].reshape(h, w, 3))
        offset += h * w * 3
    assert offset == raw.size, "decoded dump size does not match the images' sizes"
    h, w = spec.input_size
    return decoded, read_f32(tmp / "input.bin", (len(images), 3, h, w))


def _mismatch_report(images: list[Path], cpp: list[np.ndarray]) -> list[str]:
    report = []
    for path, arr in zip(images, cpp):
        ref = read_image(path)
        if not np.array_equal(ref, arr):
            diff = np.abs(ref.astype(int) - arr.astype(int))
            report.append(
                f"{path.name}: {int((diff > 0).sum())} values differ, max {int(diff.max())}"
            )
    return report


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_png_decode_and_preprocess_are_byte_identical(cpp_build, png_images, tmp_path, spec_name):
    spec = SPECS[spec_name]
    decoded, x_cpp = _cpp_preprocess(cpp_build, spec, png_images, tmp_path)
    assert _mismatch_report(png_images, decoded) == []
    x_py = spec.preprocess(png_images)
    assert x_py.dtype == np.float32 and x_py.shape == x_cpp.shape
    assert x_cpp.tobytes() == x_py.tobytes(), (
        f"{int((x_cpp.view(np.uint32) != x_py.view(np.uint32)).sum())} float32 values differ, "
        f"max |diff| {float(np.abs(x_cpp - x_py).max())}"
    )


def test_jpeg_decode_matches_pillow(cpp_build, sample_jpegs, synthetic_jpegs, tmp_path):
    # Debian's libjpeg-turbo and Pillow's bundled one use the same islow IDCT and
    # fancy upsampling; if a future Pillow changes decoders this names the images.
    images = sample_jpegs + synthetic_jpegs
    decoded, _ = _cpp_preprocess(cpp_build, SPECS["default-512"], images, tmp_path)
    report = _mismatch_report(images, decoded)
    print(
        "\n[tests/cpp] JPEG decode C++ vs Pillow: "
        f"{len(images) - len(report)}/{len(images)} identical"
    )
    assert report == []


@pytest.mark.parametrize("spec_name", sorted(SPECS))
def test_jpeg_preprocess_is_byte_identical_on_the_same_pixels(
    cpp_build, sample_jpegs, synthetic_jpegs, tmp_path, spec_name
):
    # Independent of any decoder difference: Python preprocessing of the pixels
    # the C++ reader decoded must equal the C++ preprocessing byte for byte.
    spec = SPECS[spec_name]
    images = sample_jpegs[:4] + synthetic_jpegs
    decoded, x_cpp = _cpp_preprocess(cpp_build, spec, images, tmp_path)
    x_py = spec.preprocess(decoded)
    assert x_cpp.tobytes() == x_py.tobytes()
