"""Decompression bombs are refused on the header, before any pixel is decoded."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qtseg.imageio import DEFAULT_MAX_PIXELS, ImageReadError, max_pixels, read_image, read_mask

from .conftest import bomb_png


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    """A valid 20000 x 20000 PNG of ~50 KB (400 M pixels once decoded)."""
    return bomb_png(tmp_path_factory.mktemp("bomb") / "bomb.png")


def test_the_bomb_is_small_and_really_that_large(bomb, monkeypatch):
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # Pillow itself refuses to open it
    with Image.open(bomb) as img:
        assert img.size == (20000, 20000)


@pytest.mark.parametrize("reader", [read_image, read_mask])
def test_a_bomb_is_a_clear_error(bomb, reader):
    with pytest.raises(ImageReadError, match=r"400,000,000 pixels is above the limit of 100,000,000") as exc:
        reader(bomb)
    assert "--max-pixels" in str(exc.value) and "\n" not in str(exc.value)


def test_an_image_between_pillows_limit_and_twice_it(tmp_path):
    """110 M pixels: Pillow would only warn; qtseg refuses it on the header."""
    path = bomb_png(tmp_path / "wide.png", width=11000, height=10000)
    with pytest.warns(Image.DecompressionBombWarning), pytest.raises(
        ImageReadError, match=r"11000x10000 = 110,000,000 pixels is above the limit"
    ):
        read_image(path)


def test_the_limit_can_be_lowered_and_raised(tmp_path, monkeypatch):
    path = tmp_path / "small.png"
    Image.fromarray(np.zeros((40, 50, 3), np.uint8)).save(path)
    assert read_image(path).shape == (40, 50, 3)
    with pytest.raises(ImageReadError, match="50x40 = 2,000 pixels is above the limit of 1,999"):
        read_image(path, max_pixels=1999)
    assert read_mask(path, max_pixels=2000).shape == (40, 50)
    monkeypatch.setenv("QTSEG_MAX_PIXELS", "1000")
    assert max_pixels() == 1000
    with pytest.raises(ImageReadError, match="limit of 1,000"):
        read_image(path)
    assert read_image(path, max_pixels=5000).shape == (40, 50, 3)  # the argument wins


def test_a_raised_limit_lets_a_large_image_through(tmp_path, monkeypatch):
    path = bomb_png(tmp_path / "wide.png", width=11000, height=10000)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored afterwards
    assert read_mask(path, max_pixels=120_000_000).shape == (10000, 11000)


@pytest.mark.parametrize("bad", ["0", "-5", "many", "1e9"])
def test_a_bad_limit_setting_is_a_clear_error(tmp_path, monkeypatch, bad):
    monkeypatch.setenv("QTSEG_MAX_PIXELS", bad)
    with pytest.raises(ImageReadError, match="QTSEG_MAX_PIXELS must be a positive integer"):
        max_pixels()


def test_default_is_the_documented_number():
    assert DEFAULT_MAX_PIXELS == 100_000_000
