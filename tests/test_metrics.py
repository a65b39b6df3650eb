import numpy as np
import pytest

from qtseg.metrics import mask_agreement, mean_scores, score_image


def test_binary_scores_known_values():
    gt = np.zeros((10, 10), np.uint8)
    gt[:, :5] = 1  # 50 px
    pred = np.zeros_like(gt)
    pred[:, :4] = 1  # 40 px, all inside
    s = score_image(pred, gt)
    assert s.dice == pytest.approx(2 * 40 / 90, abs=1e-6)
    assert s.iou == pytest.approx(40 / 50, abs=1e-6)
    assert s.mae == pytest.approx(0.1) and s.accuracy == pytest.approx(0.9)


def test_empty_prediction_and_truth_is_perfect():
    z = np.zeros((4, 4), np.uint8)
    assert score_image(z, z).dice == 1.0


def test_multiclass_means_foreground_classes():
    gt = np.array([[1, 1, 2, 2]], np.uint8)
    pred = np.array([[1, 1, 0, 0]], np.uint8)
    s = score_image(pred, gt, num_classes=3)
    assert s.dice == pytest.approx(0.5, abs=1e-6)  # class 1 perfect, class 2 zero
    assert s.accuracy == pytest.approx(0.5)


def test_shape_mismatch_and_mean():
    with pytest.raises(ValueError, match="shape"):
        score_image(np.zeros((2, 2)), np.zeros((3, 3)))
    a = score_image(np.ones((2, 2), np.uint8), np.ones((2, 2), np.uint8))
    b = score_image(np.zeros((2, 2), np.uint8), np.ones((2, 2), np.uint8))
    assert mean_scores([a, b]).dice == pytest.approx(0.5)
    assert mask_agreement(np.ones((2, 2)), np.array([[1, 0], [1, 1]])) == 0.75
