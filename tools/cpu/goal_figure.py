"""Issue 15's goal figure: the best verified artifact against PyTorch eager FP32, same run.

```
.venv/bin/python tools/cpu/goal_figure.py --exports EXPORTS [--threads 1,2] [--rounds 8] \
    [--per-round 2] [--out goal_figure]
```

Rows: PyTorch eager FP32 (the bundled checkpoint) and every CPU artifact in
``EXPORTS`` (onnx / openvino, opened with ``open_backend(folder, threads=N)``:
its manifest's runtime properties applied, i.e. exactly as it ships), batch 1.

For each thread count:

- **accuracy** on the 12 bundled samples against PyTorch FP32 with the export
  gate's comparison (``qtseg.evaluation.compare_logits``): agreement, Dice
  change against the ground truth, and whether the row meets the floor of its
  precision; goal 5 also asks for a Dice change >= -0.5 pp;
- **latency**: all rows take turns (``qtseg.timing.interleaved``: one untimed
  call, then ``--per-round`` timed calls each, ``--rounds`` times) on one real
  preprocessed sample. Ratios: p50 of PyTorch / p50 of the row, and the median
  over rounds of the per-round ratio (robust to load changes between rounds);
  INT8 rows also against their own runtime's FP32 (and OpenVINO's bf16) row.

The best verified artifact is the fastest row that meets its floor and the
0.5 pp Dice budget. Writes ``tools/cpu/results/<out>.json`` with the CPU's
instruction sets, OpenVINO's CPU capabilities, versions and load averages.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import SAMPLES, load_average, machine, write_results

import qtseg
from qtseg.backends import NotExecutableHere, open_backend
from qtseg.evaluation import SampleSet, compare_logits, infer_logits
from qtseg.manifest import is_artifact_dir, read_manifest_file
from qtseg.timing import interleaved, latency_stats

TORCH = "torch eager fp32"
DICE_BUDGET_PP = 0.5


def artifacts(exports: Path) -> list[Path]:
    """CPU artifact folders (onnx, openvino) in ``exports``, sorted by name."""
    found = []
    for folder in sorted(p for p in exports.iterdir() if is_artifact_dir(p)):
        manifest = read_manifest_file(folder)
        if manifest.format in ("onnx", "openvino") and manifest.runtime.device in (None, "cpu"):
            found.append(folder)
    return found


def per_round_ratio(ref: list[float], row: list[float], per_round: int) -> float:
    """Median over rounds of (median of the reference's calls / median of the row's calls)."""
    rounds = len(ref) // per_round
    ratios = [float(np.median(ref[k * per_round:(k + 1) * per_round]))
              / float(np.median(row[k * per_round:(k + 1) * per_round])) for k in range(rounds)]
    return float(np.median(ratios))


def open_rows(folders: list[Path], threads: int) -> tuple[dict[str, Any], dict[str, dict[str, Any]]]:
    """Open PyTorch and every artifact at ``threads``: ``({label: backend}, {label: info})``."""
    import torch

    torch.set_num_threads(threads)
    backends: dict[str, Any] = {TORCH: open_backend(qtseg.DEFAULT_CHECKPOINT)}
    info: dict[str, dict[str, Any]] = {TORCH: {"target": "torch-eager-fp32", "precision": "fp32",
                                               "runtime": "torch", "properties": {}}}
    for folder in folders:
        manifest = read_manifest_file(folder)
        try:
            backend = open_backend(folder, threads=threads)
        except NotExecutableHere as exc:
            print(f"{folder.name}: {exc}")
            continue
        label = manifest.target
        backends[label] = backend
        described = backend.describe()
        info[label] = {"target": manifest.target, "precision": manifest.precision,
                       "runtime": manifest.runtime.name, "properties": dict(manifest.runtime.properties),
                       "inference_precision_read_back": described.get("inference_precision"),
                       "int8_form": (manifest.details.get("int8") or {}).get("form")}
    return backends, info


def accuracy(backends: dict[str, Any], info: dict[str, dict[str, Any]], samples: SampleSet, spec: Any) -> None:
    """Parity of every row against PyTorch FP32 on the samples (into ``info``)."""
    reference = infer_logits(backends[TORCH], samples.x)
    for label, backend in backends.items():
        if label == TORCH:
            continue
        result = compare_logits(reference, infer_logits(backend, samples.x), samples, spec,
                                precision=info[label]["precision"], label=label)
        info[label].update(agreement=result.agreement, max_abs_diff=result.max_abs_diff,
                           dice=result.dice_candidate, dice_torch=result.dice_reference,
                           dice_delta_pp=result.dice_delta_pp, floor_passed=result.passed,
                           floor_failures=result.failures,
                           verified=result.passed and result.dice_delta_pp >= -DICE_BUDGET_PP)


def own_baseline(label: str, info: dict[str, dict[str, Any]], rows: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Rows an INT8 / bf16 row is compared with: its runtime's FP32 row (and OpenVINO's bf16)."""
    runtime = info[label]["runtime"]
    out = {}
    for other, meta in info.items():
        if other == label or meta["runtime"] != runtime or other not in rows:
            continue
        if meta["precision"] == "fp32":
            out["fp32"] = other
        if meta["precision"] == "bf16" and info[label]["precision"] == "int8":
            out["bf16"] = other
    return out


def run_threads(folders: list[Path], threads: int, samples: SampleSet, spec: Any, x: np.ndarray,
                rounds: int, per_round: int) -> dict[str, Any]:
    """One thread count: accuracy, then interleaved latency of every row."""
    backends, info = open_rows(folders, threads)
    try:
        accuracy(backends, info, samples, spec)
        load_before = load_average()
        times = interleaved({k: (lambda be=be: be.infer(x)) for k, be in backends.items()},
                            rounds=rounds, per_round=per_round, warmup=2, settle=1)
        load_after = load_average()
    finally:
        for backend in backends.values():
            backend.close()
    rows: dict[str, dict[str, Any]] = {}
    for label, durations in times.items():
        stats = latency_stats(durations)
        rows[label] = {**info[label], "p50_ms": stats.p50_ms, "p90_ms": stats.p90_ms, "n": stats.n,
                       "x_torch": latency_stats(times[TORCH]).p50_ms / stats.p50_ms,
                       "x_torch_per_round": per_round_ratio(times[TORCH], durations, per_round)}
    for label, row in rows.items():
        for name, other in own_baseline(label, info, rows).items():
            row[f"x_own_{name}"] = rows[other]["p50_ms"] / row["p50_ms"]
            row[f"x_own_{name}_per_round"] = per_round_ratio(times[other], times[label], per_round)
    verified = [k for k, r in rows.items() if r.get("verified")]
    best = min(verified, key=lambda k: rows[k]["p50_ms"]) if verified else None
    return {"threads": threads, "load_before": load_before, "load_after": load_after,
            "rows": rows, "best_verified": best}


def print_run(run: dict[str, Any]) -> None:
    """The table of one thread count."""
    print(f"--- {run['threads']} thread(s), batch 1, load {run['load_before']} -> {run['load_after']}")
    print(f"{'row':18s} {'prec':5s} {'p50 ms':>8s} {'x torch':>8s} {'(rounds)':>9s} {'x own fp32':>11s} "
          f"{'x own bf16':>11s} {'agree %':>8s} {'dDice pp':>9s} verified")
    for label, r in run["rows"].items():
        own = f"{r['x_own_fp32']:.2f}x" if "x_own_fp32" in r else ""
        bf16 = f"{r['x_own_bf16']:.2f}x" if "x_own_bf16" in r else ""
        agree = f"{100 * r['agreement']:.3f}" if "agreement" in r else "ref"
        dice = f"{r['dice_delta_pp']:+.3f}" if "dice_delta_pp" in r else ""
        ok = "" if label == TORCH else "yes" if r.get("verified") else "NO: " + "; ".join(
            r["floor_failures"] or [f"Dice change {r['dice_delta_pp']:+.3f} pp < -{DICE_BUDGET_PP} pp"])
        print(f"{label:18s} {r['precision']:5s} {r['p50_ms']:8.1f} {r['x_torch']:7.2f}x "
              f"{r['x_torch_per_round']:8.2f}x {own:>11s} {bf16:>11s} {agree:>8s} {dice:>9s} {ok}")
    best = run["best_verified"]
    if best:
        r = run["rows"][best]
        print(f"best verified artifact: {best} ({r['precision']}), {r['x_torch']:.2f}x PyTorch eager FP32 "
              f"(per-round median {r['x_torch_per_round']:.2f}x), Dice change {r['dice_delta_pp']:+.3f} pp")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--exports", type=Path, required=True)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=8)
    parser.add_argument("--per-round", type=int, default=2)
    parser.add_argument("--out", default="goal_figure")
    args = parser.parse_args(argv)
    folders = artifacts(args.exports)
    if not folders:
        print(f"error: no CPU artifacts in {args.exports}", file=sys.stderr)
        return 2
    spec = read_manifest_file(folders[0]).preprocess
    samples = SampleSet.from_folder(SAMPLES, spec, limit=0)
    x = np.ascontiguousarray(samples.x[:1])
    results: dict[str, Any] = {"machine": machine(), "samples": samples.names, "input": samples.names[0],
                               "rounds": args.rounds, "per_round": args.per_round,
                               "artifacts": [str(f) for f in folders], "runs": {}}
    for threads in (int(t) for t in args.threads.split(",")):
        run = run_threads(folders, threads, samples, spec, x, args.rounds, args.per_round)
        results["runs"][str(threads)] = run
        print_run(run)
        write_results(args.out, results)
    print(f"wrote {write_results(args.out, results)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
