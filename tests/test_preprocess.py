import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from qtseg.preprocess import PreprocessSpec, SpecError, resize_bilinear


@pytest.mark.parametrize("src,dst", [((530, 622), (512, 512)), ((37, 53), (64, 32)), ((512, 512), (512, 512))])
def test_resize_matches_torch_bilinear(src, dst):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(*src, 3), dtype=np.uint8)
    ours = resize_bilinear(img, dst)
    ref = F.interpolate(torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=dst,
                        mode="bilinear", align_corners=False, antialias=False)[0].permute(1, 2, 0).numpy()
    assert ours.dtype == np.float32 and ours.shape == (*dst, 3)
    np.testing.assert_allclose(ours, ref, atol=2e-3)


def test_identity_resize_is_exact():
    img = np.arange(32 * 32 * 3, dtype=np.uint8).reshape(32, 32, 3)
    assert np.array_equal(resize_bilinear(img, (32, 32)), img.astype(np.float32))


def test_preprocess_layout_and_range():
    spec = PreprocessSpec(input_size=(64, 96))
    img = np.full((100, 50, 3), 255, np.uint8)
    img[..., 1] = 0
    x = spec.preprocess(img)
    assert x.shape == (1, 3, 64, 96) and x.dtype == np.float32
    assert np.allclose(x[0, 0], 1.0) and np.allclose(x[0, 1], 0.0)
    bgr = PreprocessSpec(input_size=(64, 96), channel_order="BGR").preprocess(img)
    assert np.allclose(bgr[0, 2], 1.0) and np.allclose(bgr[0, 1], 0.0)


def test_grayscale_and_rgba_are_accepted():
    spec = PreprocessSpec(input_size=(32, 32))
    gray = np.full((40, 40), 128, np.uint8)
    rgba = np.full((40, 40, 4), 128, np.uint8)
    assert np.array_equal(spec.preprocess(gray), spec.preprocess(rgba))


def test_spec_json_roundtrip(tmp_path):
    spec = PreprocessSpec(input_size=(256, 320), num_classes=3)
    path = spec.save(tmp_path)
    assert json.loads(path.read_text())["schema"] == "qtseg.preprocess/1"
    assert PreprocessSpec.load(tmp_path) == spec


def test_spec_rejects_bad_values(tmp_path):
    with pytest.raises(SpecError, match="multiples of 32"):
        PreprocessSpec(input_size=(500, 512))
    with pytest.raises(SpecError, match="channel_order"):
        PreprocessSpec(channel_order="RGBA")
    (tmp_path / "preprocess.json").write_text(json.dumps({"input_size": [512, 512], "colour": 1}))
    with pytest.raises(SpecError, match="unknown preprocess keys: colour"):
        PreprocessSpec.load(tmp_path)


def test_postprocess_restores_original_size_and_argmax():
    spec = PreprocessSpec(input_size=(64, 64))
    logits = torch.zeros(1, 2, 64, 64)
    logits[0, 1, :, 32:] = 5.0  # right half is foreground
    mask = spec.postprocess(logits, (100, 150))
    assert mask.shape == (1, 100, 150) and mask.dtype == np.uint8
    assert mask[0, :, :70].max() == 0 and mask[0, :, 80:].min() == 1
    assert spec.postprocess(logits[0], (10, 20)).shape == (10, 20)
