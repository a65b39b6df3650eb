import numpy as np
import pytest
from PIL import Image

from qtseg.imageio import ImageReadError, read_image, read_mask


def test_truncated_jpeg_gives_one_clear_error(tmp_path, samples_dir):
    src = sorted((samples_dir / "images").glob("*.jpg"))[0].read_bytes()
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(src[: len(src) // 3])
    with pytest.raises(ImageReadError, match="cannot decode image"):
        read_image(bad)


def test_not_an_image(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("hello")
    with pytest.raises(ImageReadError, match="cannot decode"):
        read_image(path)
    with pytest.raises(ImageReadError, match="not found"):
        read_image(tmp_path / "missing.png")


@pytest.mark.parametrize("mode,channels", [("L", 1), ("LA", 2), ("RGBA", 4), ("P", 1)])
def test_other_channel_layouts_become_rgb(tmp_path, mode, channels):
    arr = np.random.default_rng(0).integers(0, 255, size=(20, 30, channels), dtype=np.uint8)
    img = Image.fromarray(arr[..., 0] if channels == 1 else arr, mode="L" if mode == "P" else mode)
    if mode == "P":
        img = img.convert("P")
    img.save(tmp_path / "a.png")
    out = read_image(tmp_path / "a.png")
    assert out.shape == (20, 30, 3) and out.dtype == np.uint8


def test_sixteen_bit_png(tmp_path):
    arr = np.full((8, 8), 65535, np.uint16)
    Image.fromarray(arr).save(tmp_path / "a.png")
    assert read_image(tmp_path / "a.png").min() == 255


def test_wrong_array_shapes():
    with pytest.raises(ImageReadError, match="expected an HxW"):
        read_image(np.zeros((4, 4, 5), np.uint8))


def test_masks_jpeg_noise_and_label_maps(tmp_path):
    noisy = np.zeros((10, 10), np.uint8)
    noisy[:, 5:] = 250
    noisy[0, 0] = 20  # compression noise stays background
    Image.fromarray(noisy).save(tmp_path / "m.png")
    mask = read_mask(tmp_path / "m.png")
    assert mask.sum() == 50
    labels = np.array([[0, 1], [2, 1]], np.uint8)
    assert np.array_equal(read_mask(labels, num_classes=3), labels)
    assert np.array_equal(read_mask(np.array([[0, 1]], np.uint8)), [[0, 1]])
    with pytest.raises(ImageReadError, match="out of range"):
        read_mask(np.array([[0, 5]], np.uint8), num_classes=3)
