"""Deterministic, stratified calibration-set selection."""

from __future__ import annotations

from pathlib import Path

import pytest

from qtseg.calibration import SelectionRule, build_set, select_samples
from qtseg.calibration.selection import EMPTY
from qtseg.data.folder import discover, split_samples
from tests.calibration.conftest import SPEC32


def _train(root: Path):
    return split_samples(discover(root), split_file=root / "splits.json")["train"]


def test_same_rule_same_set_and_id(synthetic_dataset):
    rule = SelectionRule(size=12, seed=3)
    a = build_set(synthetic_dataset, SPEC32, rule=rule)
    b = build_set(synthetic_dataset, SPEC32, rule=rule)
    assert a.names == b.names and a.set_id == b.set_id
    assert (a.x == b.x).all()
    c = build_set(synthetic_dataset, SPEC32, rule=SelectionRule(size=12, seed=4))
    assert c.names != a.names and c.set_id != a.set_id


def test_selection_order_does_not_depend_on_input_order(synthetic_dataset):
    train = _train(synthetic_dataset)
    rule = SelectionRule(size=10, seed=1)
    forward = select_samples(train, rule)
    backward = select_samples(list(reversed(train)), rule)
    assert [s.name for s in forward.samples] == [s.name for s in backward.samples]


def test_every_stratum_is_represented_including_empty_masks(synthetic_dataset):
    train = _train(synthetic_dataset)
    sel = select_samples(train, SelectionRule(size=10, strata=4))
    assert len(sel.samples) == 10
    assert EMPTY in sel.strata and {f"size-q{i}" for i in range(1, 5)} <= set(sel.strata)
    per = sel.summary["per_stratum"]
    assert sum(v["chosen"] for v in per.values()) == 10
    assert per[EMPTY]["population"] == sum(1 for s in train if int(s.name[3:]) < 8)
    # the empty stratum's images really have empty masks
    for fraction, stratum in zip(sel.fractions, sel.strata):
        assert (fraction == 0.0) == (stratum == EMPTY)
    # quantile bins are ordered by lesion size
    edges = sel.summary["bin_upper_edges"]
    assert edges == sorted(edges)


def test_size_larger_than_split_takes_all(synthetic_dataset):
    train = _train(synthetic_dataset)
    sel = select_samples(train, SelectionRule(size=1000))
    assert sorted(s.name for s in sel.samples) == sorted(s.name for s in train)


def test_folder_without_masks_falls_back_to_seeded_shuffle(synthetic_dataset, tmp_path):
    import shutil

    shutil.copytree(synthetic_dataset / "images", tmp_path / "images")
    samples = discover(tmp_path, require_masks=False)
    a = select_samples(samples, SelectionRule(size=5, seed=2))
    b = select_samples(samples, SelectionRule(size=5, seed=2))
    assert [s.name for s in a.samples] == [s.name for s in b.samples]
    assert "no masks" in a.summary["method"]


def test_manifest_records_sources_rule_and_versions(synthetic_dataset):
    calib = build_set(synthetic_dataset, SPEC32, rule=SelectionRule(size=9))
    m = calib.manifest
    assert m["source"]["split"] == "train" and len(m["source"]["split_file_sha256"]) == 64
    assert m["selection"]["rule"] == {"size": 9, "seed": 0, "strata": 4, "split": "train"}
    assert len(m["files"]) == 9 and all(len(f["image_sha256"]) == 64 and len(f["mask_sha256"]) == 64 for f in m["files"])
    val = {Path(n).stem for n in __import__("json").loads((synthetic_dataset / "splits.json").read_text())["val"]}
    assert not val & set(calib.names), "calibration images must come from the train split only"
    assert {"qtseg", "numpy"} <= set(m["versions"])
    assert calib.x.shape == (9, 3, 32, 32)


def test_real_kvasir_selection_is_stratified(kvasir_mini):
    train = split_samples(discover(kvasir_mini), split_file=kvasir_mini / "splits.json")["train"]
    sel = select_samples(train, SelectionRule(size=16, seed=0))
    assert len(sel.samples) == 16 and EMPTY not in sel.strata  # Kvasir has no empty masks
    assert all(sel.strata.count(f"size-q{i}") == 4 for i in range(1, 5))


def test_rule_validation():
    with pytest.raises(ValueError, match="size"):
        SelectionRule(size=0)
    with pytest.raises(ValueError, match="strata"):
        SelectionRule(strata=0)
