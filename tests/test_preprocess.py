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


# -- the arithmetic contract, checked bit for bit ------------------------------------------------
# The oracle below is the contract of docs/design.md written one pixel at a time with float32
# scalars, independent of the vectorised implementation (which works in row blocks and
# interpolates each source row along x once).

F32 = np.float32


def _oracle_axis(in_size: int, out_size: int) -> list[tuple[int, int, np.float32, np.float32]]:
    scale = F32(in_size) / F32(out_size)
    taps = []
    for o in range(out_size):
        src = max((F32(o) + F32(0.5)) * scale - F32(0.5), F32(0.0))
        i0 = min(int(np.floor(src)), in_size - 1)
        w1 = F32(src - F32(i0))
        taps.append((i0, min(i0 + 1, in_size - 1), F32(F32(1.0) - w1), w1))
    return taps


def _oracle_resize(array: np.ndarray, out_hw: tuple[int, int]) -> np.ndarray:
    """``(H, W, C)`` -> ``(h, w, C)`` float32, per pixel as the contract states."""
    src = array.astype(np.float32)
    out = np.empty((*out_hw, src.shape[2]), np.float32)
    for y, (y0, y1, wy0, wy1) in enumerate(_oracle_axis(src.shape[0], out_hw[0])):
        for x, (x0, x1, wx0, wx1) in enumerate(_oracle_axis(src.shape[1], out_hw[1])):
            for c in range(src.shape[2]):
                top = src[y0, x0, c] * wx0 + src[y0, x1, c] * wx1
                bottom = src[y1, x0, c] * wx0 + src[y1, x1, c] * wx1
                out[y, x, c] = top * wy0 + bottom * wy1
    return out


def _oracle_preprocess(spec: PreprocessSpec, rgb: np.ndarray) -> np.ndarray:
    resized = _oracle_resize(rgb, spec.input_size)
    if spec.channel_order == "BGR":
        resized = resized[:, :, ::-1]
    out = np.empty((3, *spec.input_size), np.float32)
    for c in range(3):
        out[c] = (resized[:, :, c] / F32(spec.scale) - F32(spec.mean[c])) / F32(spec.std[c])
    return out


# (source (H, W), target (h, w)): 1-pixel edges, odd sizes, up- and down-scaling, mixed.
SIZES = [
    ((1, 1), (3, 5)),
    ((1, 7), (4, 1)),
    ((5, 3), (1, 1)),
    ((7, 9), (13, 4)),
    ((37, 53), (32, 64)),
    ((64, 32), (37, 53)),
    ((2, 61), (9, 2)),
]


def _bits_differ(a: np.ndarray, b: np.ndarray) -> int:
    assert a.shape == b.shape and a.dtype == b.dtype == np.float32
    return int((a.view(np.uint32) != b.view(np.uint32)).sum())


@pytest.mark.parametrize("src,dst", SIZES)
@pytest.mark.parametrize("channels", [1, 2, 3])
def test_resize_is_bit_identical_to_the_contract(src, dst, channels):
    rng = np.random.default_rng(sum(src) * 31 + sum(dst) + channels)
    image = rng.integers(0, 256, size=(*src, channels), dtype=np.uint8)
    logits = (rng.standard_normal((*src, channels)) * 7).astype(np.float32)
    for array in (image, logits):
        assert _bits_differ(resize_bilinear(array, dst), _oracle_resize(array, dst)) == 0


@pytest.mark.parametrize("src,dst", SIZES[:4])
def test_one_row_blocks_give_the_same_bits(monkeypatch, src, dst):
    # Blocks of one output row exercise the block bookkeeping (source rows s0..s1) at every row.
    from qtseg import preprocess

    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, size=(*src, 3), dtype=np.uint8)
    monkeypatch.setattr(preprocess, "_BLOCK_ELEMENTS", 1)
    assert _bits_differ(resize_bilinear(image, dst), _oracle_resize(image, dst)) == 0


SPEC_VARIANTS = [
    PreprocessSpec(input_size=(32, 64)),
    PreprocessSpec(input_size=(64, 32), channel_order="BGR", mean=(0.4, 0.45, 0.5),
                   std=(0.225, 0.224, 0.229)),
    PreprocessSpec(input_size=(32, 32), scale=1.0, mean=(100.0, 0.0, 120.25),
                   std=(1.0, 60.0, 1.0)),
]


@pytest.mark.parametrize("spec", SPEC_VARIANTS, ids=["default", "bgr-mean-std", "scale1"])
@pytest.mark.parametrize("src", [(1, 1), (19, 71), (97, 45)])
def test_preprocess_is_bit_identical_to_the_contract(spec, src):
    rng = np.random.default_rng(src[0] * 7 + src[1])
    rgb = rng.integers(0, 256, size=(*src, 3), dtype=np.uint8)
    x = spec.preprocess([rgb, rgb[::-1]])
    assert _bits_differ(x[0], _oracle_preprocess(spec, rgb)) == 0
    assert _bits_differ(x[1], _oracle_preprocess(spec, np.ascontiguousarray(rgb[::-1]))) == 0
    assert _bits_differ(spec.preprocess_one(rgb), x[0]) == 0


def test_preprocess_of_a_sample_sized_image_matches_a_gather_formula():
    # A 530x622 -> 512x512 image spans many row blocks; too big for the per-pixel oracle, so
    # compare with the contract written as whole-array gathers (the pre-blocking implementation).
    rng = np.random.default_rng(3)
    rgb = (np.cumsum(rng.integers(-9, 10, (530, 622, 3)), axis=1) % 256).astype(np.uint8)
    spec = PreprocessSpec()
    taps_y = np.array(_oracle_axis(530, 512), dtype=object)
    taps_x = np.array(_oracle_axis(622, 512), dtype=object)
    y0, y1 = taps_y[:, 0].astype(int), taps_y[:, 1].astype(int)
    wy0, wy1 = (taps_y[:, k].astype(np.float32)[:, None, None] for k in (2, 3))
    x0, x1 = taps_x[:, 0].astype(int), taps_x[:, 1].astype(int)
    wx0, wx1 = (taps_x[:, k].astype(np.float32)[None, :, None] for k in (2, 3))
    src = rgb.astype(np.float32)
    top = src[y0][:, x0] * wx0 + src[y0][:, x1] * wx1
    bottom = src[y1][:, x0] * wx0 + src[y1][:, x1] * wx1
    expected = ((top * wy0 + bottom * wy1) / F32(255.0)).transpose(2, 0, 1)
    assert _bits_differ(spec.preprocess_one(rgb), np.ascontiguousarray(expected)) == 0


@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("src,dst", SIZES[2:])
def test_postprocess_is_the_argmax_of_the_contract(classes, src, dst):
    rng = np.random.default_rng(classes + src[0])
    # Integer logits make exact ties common; ties must go to the lowest class.
    logits = rng.integers(-2, 3, size=(classes, *src)).astype(np.float32)
    logits[:, :, : src[1] // 2] = rng.standard_normal((classes, src[0], src[1] // 2))
    spec = PreprocessSpec(input_size=(32, 32), num_classes=classes)
    expected = np.argmax(_oracle_resize(logits.transpose(1, 2, 0), dst), axis=2)
    assert np.array_equal(spec.postprocess(logits, dst), expected.astype(np.uint8))


@pytest.mark.parametrize("classes", [2, 3])
def test_postprocess_nan_follows_numpy_argmax(classes):
    # numpy.argmax returns the first NaN; the C++ postprocess does the same.
    logits = np.zeros((classes, 4, 4), np.float32)
    logits[0, 0, 0] = np.nan  # class 0 NaN -> 0
    logits[1, 3, 3] = np.nan  # class 1 NaN after a number -> 1
    logits[1, 0, 3] = -np.inf
    logits[0, 3, 0] = np.inf
    logits[1, 3, 0] = np.inf  # inf * 0-weight gives NaN in some taps
    spec = PreprocessSpec(input_size=(32, 32), num_classes=classes)
    expected = np.argmax(_oracle_resize(logits.transpose(1, 2, 0), (7, 5)), axis=2)
    with np.errstate(invalid="ignore"):
        assert np.array_equal(spec.postprocess(logits, (7, 5)), expected.astype(np.uint8))


def test_preprocess_and_postprocess_are_thread_safe():
    from concurrent.futures import ThreadPoolExecutor

    spec = PreprocessSpec(input_size=(64, 96), channel_order="BGR", mean=(0.1, 0.2, 0.3))
    rng = np.random.default_rng(9)
    images = [rng.integers(0, 256, (50 + 7 * i, 80 - 3 * i, 3), dtype=np.uint8) for i in range(8)]
    logits = [rng.standard_normal((2, 64, 96)).astype(np.float32) for _ in images]

    def both(pair: tuple[np.ndarray, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        image, lg = pair
        return spec.preprocess_one(image), spec.postprocess(lg, image.shape[:2])

    serial = [both(pair) for pair in zip(images, logits)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(3):
            parallel = list(pool.map(both, zip(images, logits)))
            for (x_s, m_s), (x_p, m_p) in zip(serial, parallel):
                assert x_s.tobytes() == x_p.tobytes() and np.array_equal(m_s, m_p)


def test_spec_refuses_non_finite_numbers(tmp_path):
    for key, value in [("std", [float("nan"), 1.0, 1.0]), ("mean", [float("inf"), 0.0, 0.0]),
                       ("scale", float("nan"))]:
        with pytest.raises(SpecError, match="finite"):
            PreprocessSpec.from_dict({**PreprocessSpec().to_dict(), key: value})
    path = tmp_path / "preprocess.json"
    path.write_text(json.dumps(PreprocessSpec().to_dict()).replace('"scale": 255.0', '"scale": NaN'))
    with pytest.raises(SpecError, match="NaN is not valid JSON"):
        PreprocessSpec.load(path)
    path.write_text(json.dumps(PreprocessSpec().to_dict()).replace('"scale": 255.0', '"scale": 1e999'))
    with pytest.raises(SpecError, match="finite"):
        PreprocessSpec.load(path)
