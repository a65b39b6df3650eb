"""Parity gate arithmetic on known logits."""

from __future__ import annotations

import numpy as np
import pytest
from qtseg.export.parity import (
    THRESHOLDS,
    ParityResult,
    SampleSet,
    Thresholds,
    compare_logits,
    load_samples,
)

from qtseg.preprocess import PreprocessSpec

SPEC = PreprocessSpec(input_size=(32, 32))


def _samples(n: int = 2, with_masks: bool = True) -> SampleSet:
    rng = np.random.default_rng(0)
    images = [rng.integers(0, 255, (40, 48, 3), dtype=np.uint8) for _ in range(n)]
    masks = [(rng.random((40, 48)) > 0.7).astype(np.uint8) if with_masks else None for _ in range(n)]
    return SampleSet([f"im{i}.png" for i in range(n)], images, SPEC.preprocess(images), masks)


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


def test_load_samples_reads_masks(sample_images):
    samples = load_samples(sample_images, SPEC, limit=3)
    assert samples.names == sorted(samples.names) and len(samples.names) == 3
    assert samples.x.shape == (3, 3, 32, 32) and samples.has_ground_truth
    assert all(m.shape == im.shape[:2] for m, im in zip(samples.masks, samples.images))
