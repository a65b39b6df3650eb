"""qtseg.validation: the bootstrap, the streaming pass and its failure handling, on tiny inputs.

The "models" are small numpy functions (a Predictor is any ``(N, 3, h, w) -> (N, C, h, w)``
callable): the pass is tested with known answers, not with a stand-in for a runtime.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from qtseg.backends import BackendError
from qtseg.data.folder import DatasetError, Sample, discover
from qtseg.preprocess import PreprocessSpec
from qtseg.validation import (
    Candidate,
    Reference,
    StrictFailure,
    bootstrap_ci,
    evaluate,
    score_samples,
    select_samples,
)

SPEC = PreprocessSpec(input_size=(32, 32))


def bright_is_foreground(x: np.ndarray) -> np.ndarray:
    """Class 1 where the red channel is above 0.5: ``(N, 2, h, w)`` logits."""
    fg = x[:, 0] - 0.5
    return np.stack([-fg, fg], axis=1).astype(np.float32)


def everything_foreground(x: np.ndarray) -> np.ndarray:
    logits = np.zeros((x.shape[0], 2, *x.shape[2:]), np.float32)
    logits[:, 1] = 1.0
    return logits


@pytest.fixture
def folder(tmp_path):
    """Three 20x24 images: a bright square on black, its mask; image 'c' has no bright pixel."""
    for sub in ("images", "masks"):
        (tmp_path / sub).mkdir()
    for name, box in (("a", (4, 12)), ("b", (2, 20)), ("c", None)):
        image = np.zeros((20, 24, 3), np.uint8)
        mask = np.zeros((20, 24), np.uint8)
        if box:
            image[box[0]:box[1], box[0]:box[1]] = 255
            mask[box[0]:box[1], box[0]:box[1]] = 255
        Image.fromarray(image).save(tmp_path / "images" / f"{name}.png")
        Image.fromarray(mask).save(tmp_path / "masks" / f"{name}.png")
    return tmp_path


def test_bootstrap_is_seeded_and_brackets_the_mean():
    values = np.random.default_rng(1).random(50)
    low, high = bootstrap_ci(values, seed=3)
    assert (low, high) == bootstrap_ci(values, seed=3)
    assert low < values.mean() < high and high - low < 0.25
    assert bootstrap_ci([0.7]) == (0.7, 0.7)
    assert bootstrap_ci([0.5] * 10) == (0.5, 0.5)
    with pytest.raises(ValueError):
        bootstrap_ci([])


def test_pass_scores_agreement_and_latency(folder):
    samples = discover(folder)
    perfect = Candidate("bright", bright_is_foreground, SPEC,
                        Reference("ref", bright_is_foreground, SPEC))
    wrong = Candidate("all", everything_foreground, SPEC,
                      Reference("ref", bright_is_foreground, SPEC))
    result = score_samples(samples, [perfect, wrong], batch=2, warmup=1)
    good = result.candidates["bright"].summary()
    assert good["num_scored"] == 3 and good["dice"] == pytest.approx(1.0)
    assert good["agreement"] == 1.0 and good["dice_delta_pp"] == 0.0
    assert good["latency"]["batch"] == 2 and good["latency"]["n"] == 1  # one full call of 2
    bad = result.candidates["all"].summary()
    assert bad["agreement"] < 1.0 and bad["dice_delta_pp"] < -10
    records = {r.name: r for r in result.candidates["all"].records}
    assert records["c"].foreground == 1.0 and records["c"].foreground_truth == 0.0
    assert records["c"].dice == pytest.approx(0.0, abs=1e-6)  # empty truth, full prediction
    assert (records["a"].height, records["a"].width) == (20, 24)


def test_failures_are_recorded_per_image_and_strict_stops(folder):
    (folder / "images" / "b.png").write_bytes(b"broken")

    def fails_on_dark(x: np.ndarray) -> np.ndarray:
        if x.max() == 0:
            raise BackendError("non-finite logits (test)")
        return bright_is_foreground(x)

    samples = discover(folder)
    result = score_samples(samples, [Candidate("m", fails_on_dark, SPEC)])
    assert [f.name for f in result.unreadable] == ["b"] and result.unreadable[0].stage == "read"
    cand = result.candidates["m"]
    assert [r.name for r in cand.records] == ["a"]
    assert [(f.name, f.stage) for f in cand.failures] == [("c", "infer")]
    assert "non-finite" in cand.failures[0].message
    with pytest.raises(StrictFailure) as exc:
        score_samples(samples, [Candidate("m", fails_on_dark, SPEC)], strict=True)
    assert exc.value.failure.name == "b"
    with pytest.raises(StrictFailure):
        evaluate(fails_on_dark, SPEC, samples)


def test_images_without_masks_have_no_scores(folder):
    samples = [Sample(s.name, s.image, None) for s in discover(folder)]
    result = score_samples(samples, [Candidate("m", bright_is_foreground, SPEC)])
    summary = result.candidates["m"].summary()
    assert summary["num_images"] == 3 and summary["num_scored"] == 0 and summary["dice"] is None
    with pytest.raises(ValueError, match="ground-truth mask"):
        evaluate(bright_is_foreground, SPEC, samples)


def test_select_samples_splits(folder):
    (folder / "splits.json").write_text('{"train": ["a.png"], "val": [], "test": ["b", "c"]}')
    chosen, note = select_samples(folder)
    assert [s.name for s in chosen] == ["b", "c"] and "test split" in note
    assert [s.name for s in select_samples(folder, "train")[0]] == ["a"]
    assert len(select_samples(folder, "all")[0]) == 3
    assert [s.name for s in select_samples(folder / "images", "all")[0]] == ["a", "b", "c"]
    with pytest.raises(DatasetError, match="empty"):
        select_samples(folder, "val")
    (folder / "splits.json").unlink()
    with pytest.raises(DatasetError, match="needs a split file"):
        select_samples(folder, "test")


def test_duplicate_stems_are_refused(folder):
    Image.open(folder / "images" / "a.png").save(folder / "images" / "a.jpg")
    with pytest.raises(DatasetError, match="a.jpg and a.png have the same name"):
        discover(folder)


def test_candidates_need_unique_labels_and_one_class_count(folder):
    samples = discover(folder)
    with pytest.raises(ValueError, match="unique"):
        score_samples(samples, [Candidate("m", bright_is_foreground, SPEC)] * 2)
    three = PreprocessSpec(input_size=(32, 32), num_classes=3,
                           class_names=("background", "a", "b"))
    with pytest.raises(ValueError, match="number of classes"):
        score_samples(samples, [Candidate("m", bright_is_foreground, SPEC),
                                Candidate("n", bright_is_foreground, three)])


def test_a_failed_batch_is_retried_image_by_image(folder):
    calls = []

    def fails_on_dark(x: np.ndarray) -> np.ndarray:
        calls.append(x.shape[0])
        if (x.reshape(x.shape[0], -1).max(axis=1) == 0).any():
            raise BackendError("non-finite logits (test)")
        return bright_is_foreground(x)

    result = score_samples(discover(folder), [Candidate("m", fails_on_dark, SPEC)], batch=3,
                           warmup=0)
    cand = result.candidates["m"]
    assert [r.name for r in cand.records] == ["a", "b"] and [f.name for f in cand.failures] == ["c"]
    assert calls == [3, 1, 1, 1] and cand.call_s == []  # no full call of 3 succeeded
