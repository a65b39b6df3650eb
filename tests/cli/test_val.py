"""``qtseg-val`` end to end on two real artifacts: numbers, floors, failures, agreement with
the export gate and with ``qtseg-bench --data``."""

from __future__ import annotations

import csv
import json
import math
import shutil

import numpy as np
import pytest

from qtseg.backends import open_backend
from qtseg.cli.val import main
from qtseg.data.folder import discover
from qtseg.evaluation import infer_logits, masks_of
from qtseg.imageio import read_image, read_mask
from qtseg.manifest import read_manifest_file
from qtseg.metrics import score_image

from .conftest import labelled_folder

ARTIFACTS = ("qtseg-v2_onnx", "qtseg-v2_openvino-fp32")


@pytest.fixture(scope="module")
def data(tmp_path_factory, samples_dir):
    return labelled_folder(tmp_path_factory.mktemp("val") / "data", samples_dir, 3)


@pytest.fixture(scope="module")
def val_run(data, tiny_exports, tmp_path_factory):
    out = tmp_path_factory.mktemp("val") / "out"
    paths = [str(tiny_exports / a) for a in ARTIFACTS]
    rc = main([*paths, "--data", str(data), "--out", str(out), "--min-dice", "0.0",
               "--threads", "1", "--warmup", "1", "--quiet"])
    return rc, out


def _direct_dice(artifact, data):
    """Mean Dice computed without qtseg.validation: open_backend + evaluation + metrics."""
    spec = read_manifest_file(artifact).preprocess
    samples = discover(data)
    images = [read_image(s.image) for s in samples]
    with open_backend(artifact) as be:
        logits = infer_logits(be, spec.preprocess(images))
    masks = masks_of(logits, [i.shape[:2] for i in images], spec)
    return float(np.mean([score_image(m, read_mask(s.mask), 2).dice for m, s in zip(masks, samples)]))


def test_two_artifacts_summary_csv_and_markdown(val_run, data, tiny_exports, capsys):
    rc, out = val_run
    assert rc == 0
    report = json.loads((out / "summary.json").read_text())
    assert report["schema"] == "qtseg.val/1" and report["verdict"] == {"passed": True, "problems": []}
    assert [r["label"] for r in report["results"]] == list(ARTIFACTS)
    for r in report["results"]:
        assert r["num_scored"] == 3 and r["num_failed"] == 0
        assert math.isclose(r["dice"], _direct_dice(tiny_exports / r["label"], data), rel_tol=1e-12)
        assert r["dice_ci"][0] <= r["dice"] <= r["dice_ci"][1]
        assert r["iou"] <= r["dice"] and 0.0 <= r["mae"] <= 1.0
        # fp32 artifacts of their own checkpoint: the reference was found through the manifest
        assert r["reference"] and r["agreement"] > 0.999 and abs(r["dice_delta_pp"]) < 0.1
        assert r["e2e"]["p50_ms"] >= r["latency"]["p50_ms"] > 0  # both from the same calls
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert len(rows) == 2 * 3 and {r["status"] for r in rows} == {"ok"}
    assert {"dice", "iou", "mae", "foreground", "e2e_ms", "height", "width"} <= set(rows[0])
    md = (out / "summary.md").read_text()
    assert "Dice % [95% CI]" in md and "load average" in md and "Verdict: PASS" in md


def test_floor_that_fails_exits_1(val_run, data, tiny_exports, tmp_path, capsys):
    _, first = val_run
    dice = json.loads((first / "summary.json").read_text())["results"][0]["dice"]
    out = tmp_path / "out"
    rc = main([str(tiny_exports / ARTIFACTS[0]), "--data", str(data), "--out", str(out),
               "--min-dice", f"{min(1.0, dice + 0.01):.4f}", "--no-reference", "--quiet"])
    assert rc == 1
    assert "is below --min-dice" in capsys.readouterr().err
    report = json.loads((out / "summary.json").read_text())
    assert not report["verdict"]["passed"] and report["results"][0]["agreement"] is None


def test_matches_the_export_gate_on_its_images(tiny_exports, samples_dir, tmp_path):
    """The gate scored the first 2 bundled samples: val on exactly those gives its numbers."""
    artifact = tiny_exports / ARTIFACTS[0]
    gate = read_manifest_file(artifact).parity["results"][0]
    data = labelled_folder(tmp_path / "data", samples_dir, 2)
    out = tmp_path / "out"
    assert main([str(artifact), "--data", str(data), "--out", str(out), "--quiet"]) == 0
    (r,) = json.loads((out / "summary.json").read_text())["results"]
    assert math.isclose(r["dice"], gate["dice_candidate"], rel_tol=1e-12)
    assert math.isclose(r["dice_reference"], gate["dice_reference"], rel_tol=1e-12)
    assert math.isclose(r["agreement"], gate["agreement"], rel_tol=1e-12)


@pytest.mark.slow
def test_bench_data_uses_the_same_accuracy(val_run, data, tiny_exports, tmp_path):
    from qtseg.bench.cli import main as bench

    _, out = val_run
    val = {r["label"]: r for r in json.loads((out / "summary.json").read_text())["results"]}
    rc = bench([str(tiny_exports / ARTIFACTS[0]), "--data", str(data), "--iters", "1",
                "--warmup", "0", "--e2e-iters", "0", "--num-images", "1", "--threads", "1",
                "--no-isolate", "--no-plots", "--quiet", "--out", str(tmp_path / "bench")])
    assert rc == 0
    report = json.loads((tmp_path / "bench" / "report.json").read_text())
    row = next(r for r in report["rows"] if r["target"] == "onnx")
    for key in ("dice", "iou", "mae"):
        assert math.isclose(row["accuracy"][key], val[ARTIFACTS[0]][key], rel_tol=1e-12), key
    assert row["accuracy"]["num_images"] == 3 and row["accuracy"]["dice_ci"]


def test_unreadable_image_is_skipped_not_fatal(data, tiny_exports, tmp_path, capsys):
    broken = tmp_path / "data"
    shutil.copytree(data, broken)
    (broken / "images" / "zbad.jpg").write_bytes(b"not a jpeg")
    (broken / "masks" / "zbad.png").write_bytes(b"not a png")
    out = tmp_path / "out"
    rc = main([str(tiny_exports / ARTIFACTS[0]), "--data", str(broken), "--out", str(out),
               "--no-reference", "--quiet"])
    assert rc == 0
    assert "error: zbad: cannot decode image" in capsys.readouterr().err
    report = json.loads((out / "summary.json").read_text())
    assert report["results"][0]["num_scored"] == 3 and len(report["data"]["unreadable"]) == 1
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert [r["status"] for r in rows].count("unreadable") == 1


def test_a_folder_where_nothing_can_be_scored_fails(tiny_exports, tmp_path, capsys):
    bad = tmp_path / "bad"
    (bad / "images").mkdir(parents=True)
    (bad / "masks").mkdir()
    (bad / "images" / "a.jpg").write_bytes(b"not a jpeg")
    (bad / "masks" / "a.png").write_bytes(b"not a png")
    rc = main([str(tiny_exports / ARTIFACTS[0]), "--data", str(bad), "--out", str(tmp_path / "out"),
               "--no-reference", "--quiet"])
    assert rc == 1 and "no image could be scored" in capsys.readouterr().err


def test_split_selection_and_usage_errors(data, tiny_exports, tmp_path, capsys):
    names = sorted(p.name for p in (data / "images").iterdir())
    (data / "splits.json").write_text(json.dumps({"train": names[:2], "val": [], "test": names[2:]}))
    try:
        out = tmp_path / "out"
        artifact = str(tiny_exports / ARTIFACTS[0])
        assert main([artifact, "--data", str(data), "--out", str(out), "--no-reference",
                     "--quiet"]) == 0
        report = json.loads((out / "summary.json").read_text())
        assert report["results"][0]["num_scored"] == 1 and "test split" in report["data"]["selection"]
        assert main([artifact, "--data", str(data), "--split", "val", "--out", str(out)]) == 2
        assert "split is empty" in capsys.readouterr().err
    finally:
        (data / "splits.json").unlink()
    assert main([artifact, "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    assert main([str(tmp_path), "--data", str(data), "--out", str(out)]) == 2
    assert "neither an artifact" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--min-dice", "85"])
