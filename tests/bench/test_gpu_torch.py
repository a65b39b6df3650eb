"""``python -m qtseg.bench.gpu_torch``: arguments, and honest rows on a machine without a GPU."""

from __future__ import annotations

import contextlib
import io
import json

import pytest
import torch

from qtseg.bench.gpu_torch import bench_argv, build_parser, main
from qtseg.bench.report import validate_report


def test_random_weights_only_without_a_checkpoint():
    args = build_parser().parse_args(["--out", "o"])
    assert "--random-weights" in bench_argv(args, bundled_present=False)
    assert "--random-weights" not in bench_argv(args, bundled_present=True)
    args = build_parser().parse_args(["--out", "o", "--checkpoint", "c", "--batch", "1,32"])
    argv = bench_argv(args, bundled_present=False)
    assert argv[:3] == ["--device", "cuda", "--torch-only"] and "--random-weights" not in argv
    assert argv[argv.index("--batch") + 1] == "1,32"


@pytest.mark.slow
@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the rows of a machine without a GPU")
def test_without_gpu_every_row_is_not_executed(tiny_checkpoint, tmp_path):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(
            [
                "--out",
                str(tmp_path),
                "--checkpoint",
                str(tiny_checkpoint),
                "--iters",
                "1",
                "--warmup",
                "0",
                "--e2e-iters",
                "0",
                "--num-images",
                "1",
                "--no-isolate",
            ]
        )
    assert rc == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert validate_report(report) == []
    assert [r["variant"] for r in report["rows"]] == [
        "eager-fp32",
        "eager-fp16",
        "graph-fp32",
        "graph-fp16",
        "fast-fp16",
    ]
    assert all(r["status"] == "not_executed" and "CUDA" in r["reason"] for r in report["rows"])
    assert all(r["latency"] == [] for r in report["rows"])
    assert report["plots"] == [] and "no row was timed" in report["plots_note"]
