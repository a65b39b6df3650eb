"""Accuracy guard and sensitivity search, with real images and real metrics.

The candidates are the FP32 logits with a defect added per "layer group", so
the test knows which group is at fault and checks that the search finds it.
"""

from __future__ import annotations

import numpy as np
import pytest

from qtseg.calibration import GuardConfig, LayerGroup, run_guard, score
from qtseg.calibration.groups import layer_groups
from qtseg.data.folder import discover, split_samples
from qtseg.evaluation import SampleSet
from qtseg.preprocess import PreprocessSpec

SPEC = PreprocessSpec(input_size=(64, 64))


@pytest.fixture(scope="module")
def held(kvasir_mini) -> SampleSet:
    val = split_samples(discover(kvasir_mini), split_file=kvasir_mini / "splits.json")["val"][:10]
    return SampleSet.from_samples(val, SPEC, source={"split": "val"})


def oracle(held: SampleSet):
    """A 'model' that outputs logits of the true mask at model resolution (Dice ~ 1)."""
    from qtseg.preprocess import resize_bilinear

    table = {}
    for i, truth in enumerate(held.masks):
        small = resize_bilinear(truth.astype(np.float32), SPEC.input_size) * 8.0 - 4.0
        table[held.x[i].tobytes()[:4096]] = np.stack([-small, small])[None].astype(np.float32)
    return lambda x: table[x[0].tobytes()[:4096]]


def defective(reference, faults: dict[str, float]):
    """build(kept) -> predictor whose output is the reference minus the faults of groups not kept."""

    def build(kept: tuple[str, ...]):
        shift = sum(v for k, v in faults.items() if k not in kept)

        def predict(x):
            out = reference(x).copy()
            out[:, 1] -= shift  # lower the foreground logit: lesions shrink, Dice drops
            return out

        return predict

    return build


def test_passes_without_search_when_within_budget(held):
    ref = oracle(held)
    reference = score(ref, held, SPEC)
    report = run_guard(reference, defective(ref, {"a": 0.5}), [LayerGroup("a", "^a")], held, SPEC)
    assert report.passed and report.kept_float == [] and not report.sensitivity
    assert report.initial["drop_pp"] < 0.5 and report.final["agreement"] > 0.9


def test_search_keeps_the_faulty_groups(held):
    ref = oracle(held)
    reference = score(ref, held, SPEC)
    faults = {"decoder/softmax": 3.0, "encoder/stem": 0.0, "head": 5.0, "bridge": 0.1}
    groups = [LayerGroup(name, "^" + name) for name in faults]
    report = run_guard(reference, defective(ref, faults), groups, held, SPEC,
                       config=GuardConfig(max_dice_drop_pp=0.5), reference_predict=ref)
    assert report.initial["drop_pp"] > 0.5
    assert report.passed and report.final["drop_pp"] <= 0.5
    assert report.kept_float[0] == "head" and set(report.kept_float) <= {"head", "decoder/softmax", "bridge"}
    assert [r["group"] for r in report.sensitivity][:2] == ["head", "decoder/softmax"]
    assert report.rounds and report.rounds[-1]["kept_float"] == report.kept_float


def test_fails_when_the_budget_cannot_hold(held):
    ref = oracle(held)
    reference = score(ref, held, SPEC)
    report = run_guard(reference, defective(ref, {"a": 6.0, "b": 6.0}), [LayerGroup("a", "^a")], held, SPEC,
                       config=GuardConfig(max_kept=1), reference_predict=ref)
    assert not report.passed and report.kept_float == ["a"] and "FAIL" in report.summary()


def test_layer_groups_from_node_names():
    names = [
        "/model/encoder/stem/stem.0/conv/Conv",
        "/model/encoder/stem/stem.1/conv/Conv",
        "/model/encoder/stage3/stage3.0/conv/Conv",
        *[f"/model/decoder/stages.0/layers.0/attn/MatMul_{i}" for i in range(5)],
        "/model/decoder/stages.0/final_attn/q_proj/Gemm",
        "/model/decoder/MatMul",
        "/model/Resize",
    ]
    groups = layer_groups(names, max_nodes=4, first_conv=names[0])
    by_name = {g.name: g for g in groups}
    assert by_name["first-conv"].select(names) == [names[0]]
    assert by_name["model/encoder/stem"].select(names) == names[:2]
    # 5 nodes > max_nodes: split one level deeper, down to a level with no deeper nodes
    assert by_name["model/decoder/stages.0/layers.0/attn"].select(names) == names[3:8]
    assert by_name["model/decoder/stages.0/final_attn"].select(names) == [names[8]]
    assert by_name["model/decoder/*"].select(names) == ["/model/decoder/MatMul"]
    assert by_name["model/*"].select(names) == ["/model/Resize"]
    covered = {n for g in groups if g.name != "first-conv" for n in g.select(names)}
    assert covered == set(names)
