"""qtseg.evaluation: parity arithmetic on known logits, the one agreement, samples."""

from __future__ import annotations

import numpy as np
import pytest

from qtseg.evaluation import (
    THRESHOLDS,
    ParityResult,
    SampleSet,
    Thresholds,
    agreement,
    compare_logits,
    infer_logits,
)
from qtseg.preprocess import PreprocessSpec

SPEC = PreprocessSpec(input_size=(32, 32))


def _samples(n: int = 2, with_masks: bool = True) -> SampleSet:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 48, 3), dtype=np.uint8) for _ in range(n)]
    masks = [(rng.random((40, 48)) > 0.7).astype(np.uint8) if with_masks else None for _ in range(n)]
    sizes = [im.shape[:2] for im in images]
    return SampleSet([f"im{i}.png" for i in range(n)], SPEC.preprocess(images), sizes, masks, images)


def _logits(n: int = 2) -> list[np.ndarray]:
    rng = np.random.default_rng(1)
    return [rng.standard_normal((1, 2, 32, 32)).astype(np.float32) for _ in range(n)]


def test_identical_passes_and_roundtrips():
    ref = _logits()
    result = compare_logits(ref, [r.copy() for r in ref], _samples(), SPEC, precision="fp32")
    assert result.passed and result.max_abs_diff == 0 and result.agreement == 1.0
    assert result.dice_basis == "ground truth" and result.dice_delta_pp == 0
    assert ParityResult.from_dict(result.to_dict()) == result


def test_flipped_pixels_fail_with_numbers():
    ref = _logits()
    cand = [r.copy() for r in ref]
    cand[0][:, :, :4, :] = -cand[0][:, :, :4, :]  # flips the class of 1/8 of image 0
    result = compare_logits(ref, cand, _samples(), SPEC, precision="fp16")
    assert not result.passed
    assert result.agreement == pytest.approx(1 - 4 / 32 / 2, abs=0.01)
    assert any(f.startswith("agreement") for f in result.failures)
    assert "FAIL" in result.summary()


def test_nan_fails_even_without_a_diff_threshold():
    ref = _logits()
    cand = [r.copy() for r in ref]
    cand[1][0, 0, 0, 0] = np.nan
    result = compare_logits(ref, cand, _samples(), SPEC, precision="fp16")
    assert not result.passed and "NaN/Inf logits in 1 image(s)" in result.failures


def test_dice_against_reference_masks_without_ground_truth():
    ref = _logits()
    result = compare_logits(ref, ref, _samples(with_masks=False), SPEC, precision="fp32")
    assert result.dice_basis == "reference masks" and result.dice_reference == pytest.approx(1.0)


def test_thresholds_of_the_issue():
    assert THRESHOLDS["fp32"] == Thresholds(max_abs_diff=1e-3, min_agreement=0.9999, max_dice_delta_pp=None)
    assert THRESHOLDS["fp16"].min_agreement == 0.999 and THRESHOLDS["fp16"].max_dice_delta_pp == 0.1


def test_agreement_is_the_argmax_match_at_model_resolution():
    ref = _logits(1)[0]
    cand = ref.copy()
    cand[:, :, :8, :] = -cand[:, :, :8, :]  # flips the class of the top quarter
    assert agreement(ref, cand) == pytest.approx(0.75)
    assert agreement(ref[0], cand[0]) == agreement(ref, cand)
    with pytest.raises(ValueError):
        agreement(ref, ref[:, :, :16])


def test_infer_logits_pads_a_static_batch_and_keeps_each_images_rows():
    x = np.random.default_rng(2).random((5, 3, 4, 4), dtype=np.float32)
    calls = []

    def predict(batch: np.ndarray) -> np.ndarray:
        calls.append(batch.shape[0])
        return batch[:, :2] * 2

    out = infer_logits(predict, x, batch=2)
    assert calls == [2, 2, 2] and len(out) == 5
    assert all(np.array_equal(o[0], x[i, :2] * 2) for i, o in enumerate(out))


def test_samples_from_folder_read_masks(samples_dir):
    samples = SampleSet.from_folder(samples_dir / "images", SPEC, limit=3)
    assert samples.names == sorted(samples.names) and len(samples.names) == 3
    assert samples.x.shape == (3, 3, 32, 32) and samples.has_ground_truth
    assert all(m.shape == im.shape[:2] == size for m, im, size in zip(samples.masks, samples.images, samples.sizes))
