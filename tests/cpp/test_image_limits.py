"""Decompression bombs (issue 12, item 7, C++ side): the PNG/JPEG decoders refuse images above
the pixel limit (default 100,000,000 pixels) from the header, before allocating; --max-pixels
raises or lowers it."""

from __future__ import annotations

import re
import struct
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from qtseg.preprocess import PreprocessSpec
from tests.cpp.helpers import cli_fails, png_from_rows, run

pytestmark = pytest.mark.slow

DEFAULT_LIMIT = 100_000_000


@pytest.fixture(scope="module")
def spec_file(tmp_path_factory) -> Path:
    return PreprocessSpec(input_size=(64, 64)).save(tmp_path_factory.mktemp("spec"))


@pytest.fixture(scope="module")
def bomb_png(tmp_path_factory) -> Path:
    """A real 1-bit 20000 x 20000 PNG of zeros: ~50 KB on disk, 1.2 GB as RGB."""
    width = height = 20000
    row = b"\0" + bytes((width + 7) // 8)
    path = png_from_rows(
        tmp_path_factory.mktemp("bomb") / "bomb.png",
        width,
        height,
        row * height,
        bit_depth=1,
        color_type=0,
    )
    assert path.stat().st_size < 100_000
    return path


@pytest.fixture(scope="module")
def bomb_jpeg(tmp_path_factory) -> Path:
    """A small JPEG whose SOF header is patched to claim 20000 x 20000 pixels."""
    out = tmp_path_factory.mktemp("jbomb")
    Image.fromarray(np.full((16, 16, 3), 99, np.uint8)).save(out / "small.jpg", quality=90)
    data = bytearray((out / "small.jpg").read_bytes())
    sof = data.index(
        b"\xff\xc0"
    )  # baseline SOF0: marker, length(2), precision(1), height(2), width(2)
    data[sof + 5 : sof + 9] = struct.pack(">HH", 20000, 20000)
    (out / "bomb.jpg").write_bytes(bytes(data))
    return out / "bomb.jpg"


def _preprocess(cpp_build, spec_file, image, *extra) -> str:
    return cli_fails(cpp_build.cli, "--spec", spec_file, "--input", image, *extra)


@pytest.mark.parametrize("which", ["bomb_png", "bomb_jpeg"])
def test_bomb_is_refused_before_decoding(cpp_build, spec_file, request, which):
    image = request.getfixturevalue(which)
    line = _preprocess(cpp_build, spec_file, image)
    assert (
        f"image {image} is 20000 x 20000 = 400000000 pixels, more than the limit of {DEFAULT_LIMIT}"
        in line
    )
    assert "--max-pixels" in line


def test_bomb_is_refused_with_an_artifact_too(cpp_build, tiny_ov_artifact, bomb_png, tmp_path):
    line = cli_fails(
        cpp_build.cli,
        "--artifact",
        tiny_ov_artifact,
        "--input",
        bomb_png,
        "--output",
        tmp_path / "m.png",
    )
    assert "more than the limit of 100000000" in line
    assert not (tmp_path / "m.png").exists()


@pytest.mark.parametrize("suffix", ["png", "jpg"])
def test_max_pixels_flag_moves_the_limit(cpp_build, spec_file, tmp_path, suffix):
    image = tmp_path / f"img.{suffix}"
    Image.fromarray(np.full((37, 53, 3), 120, np.uint8)).save(image)
    pixels = 37 * 53
    line = _preprocess(cpp_build, spec_file, image, "--max-pixels", str(pixels - 1))
    assert f"is 53 x 37 = {pixels} pixels, more than the limit of {pixels - 1}" in line
    ok = run([cpp_build.cli, "--spec", spec_file, "--input", image, "--max-pixels", str(pixels)])
    assert ok.returncode == 0, ok.stderr


@pytest.mark.parametrize("value", ["0", "-5", "1e9", "many"])
def test_max_pixels_needs_a_positive_integer(cpp_build, spec_file, bomb_png, value):
    line = cli_fails(
        cpp_build.cli, "--spec", spec_file, "--input", bomb_png, "--max-pixels", value, code=2
    )
    assert "--max-pixels expects an integer >= 1" in line


def test_default_limit_is_documented_and_matches_python(cpp_build):
    help_text = run([cpp_build.cli, "--help"]).stdout
    assert (
        int(re.search(r"--max-pixels N .*\(default (\d+)\)", help_text).group(1)) == DEFAULT_LIMIT
    )
    from qtseg.imageio import DEFAULT_MAX_PIXELS

    assert DEFAULT_MAX_PIXELS == DEFAULT_LIMIT
