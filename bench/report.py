"""``report.json`` (schema ``qtseg.bench.report/1``): assembly, ratios and validation.

The schema is documented in docs/bench.md; :func:`validate_report` checks a
report against it (types of every documented key), so a change to the
layout breaks a test before it breaks a consumer.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qtseg.atomic import atomic_write_text, finite_or_none
from qtseg.bench.recommend import CANDIDATE_KEYS, ENTRY_KEYS, recommend
from qtseg.timing import PERCENTILE_RULE

SCHEMA = "qtseg.bench.report/1"
REPORT_JSON = "report.json"
RUNNABLE = ("ok", "parity_failed")

TIMING = {
    "model_only": (
        "preprocessed float32 batch in, logits out (host arrays; the runtime's own copies "
        "included). PyTorch CUDA rows: device tensors, CUDA events"
    ),
    "cpu_clock": "time.perf_counter (monotonic), one sample per call",
    "gpu_timer": "torch.cuda.Event pairs; the GPU is synchronized before each timed call",
    "percentiles": PERCENTILE_RULE,
    "std": "sample standard deviation (n - 1)",
    "throughput": "img_per_s = batch / mean",
    "speedup": (
        "speedup_vs_reference = p50 of the model's PyTorch eager FP32 row / p50 of the row, "
        "same batch"
    ),
}

_NUM = (int, float)
_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))
_OPT_DICT = (dict, type(None))

TOP_KEYS: dict[str, tuple[type, ...]] = {
    "schema": (str,),
    "created_utc": (str,),
    "command": (str,),
    "config": (dict,),
    "system": (dict,),
    "timing": (dict,),
    "threads": (int,),
    "memory_scope": (str,),
    "models": (list,),
    "rows": (list,),
    "summary": (list,),
    "plots": (list,),
    "plots_note": _OPT_STR,
}
SYSTEM_KEYS = {
    "os": (str,),
    "python": (str,),
    "cpu": (dict,),
    "gpu": _OPT_DICT,
    "versions": (dict,),
}
CPU_KEYS = {"model": (str,), "flags": (list,), "logical_cpus": _OPT_NUM, "usable_cpus": (int,)}
MODEL_KEYS = {
    "key": (str,),
    "name": (str,),
    "config": (dict,),
    "checkpoint": _OPT_STR,
    "checkpoint_note": (str,),
    "weights": (str,),
    "preprocess": (dict,),
    "params": (int,),
    "macs": (int,),
    "flops": (int,),
    "input_shape": (list,),
    "counter": (str,),
    "layers": (list, type(None)),
}
ROW_KEYS = {
    "id": (str,),
    "model": _OPT_STR,
    "kind": (str,),
    "backend": (str,),
    "variant": _OPT_STR,
    "format": _OPT_STR,
    "target": _OPT_STR,
    "precision": _OPT_STR,
    "device": (str,),
    "artifact": (str,),
    "is_reference": (bool,),
    "status": (str,),
    "reason": _OPT_STR,
    "notes": (list,),
    "threads": (int,),
    "size_mb": _OPT_NUM,
    "accuracy": _OPT_DICT,
    "parity": _OPT_DICT,
    "export_gate": _OPT_DICT,
    "latency": (list,),
    "e2e": _OPT_DICT,
    "memory": (dict,),
    "describe": _OPT_DICT,
    "seconds": _OPT_NUM,
    "reference_row": _OPT_STR,
}
ACCURACY_KEYS = {"num_images": (int,), "dice": _NUM, "iou": _NUM, "mae": _NUM, "accuracy": _NUM}
PARITY_KEYS = {
    "precision": (str,),
    "num_images": (int,),
    "max_abs_diff": _NUM,
    "mean_abs_diff": _NUM,
    "agreement": _NUM,
    "dice_reference": _NUM,
    "dice_candidate": _NUM,
    "dice_delta_pp": _NUM,
    "thresholds": (dict,),
    "passed": (bool,),
    "failures": (list,),
}
LATENCY_KEYS = {"batch": (int,), "status": (str,), "reason": _OPT_STR, "timer": (str,)}
STATS_KEYS = {
    "n": (int,),
    "mean_ms": _NUM,
    "std_ms": _NUM,
    "p50_ms": _NUM,
    "p90_ms": _NUM,
    "p99_ms": _NUM,
    "min_ms": _NUM,
    "max_ms": _NUM,
    "img_per_s": _OPT_NUM,
    "speedup_vs_reference": _OPT_NUM,
}
MEMORY_KEYS = {
    "peak_rss_mb": _OPT_NUM,
    "rss_before_load_mb": _OPT_NUM,
    "peak_gpu_allocated_mb": _OPT_NUM,
}
STATUSES = ("ok", "parity_failed", "not_executed", "error")


def _check(obj: Any, keys: dict[str, tuple[type, ...]], where: str, problems: list[str]) -> None:
    if not isinstance(obj, dict):
        problems.append(f"{where}: expected an object, got {type(obj).__name__}")
        return
    for key, types in keys.items():
        if key not in obj:
            problems.append(f"{where}: missing key {key!r}")
        elif isinstance(obj[key], bool) and bool not in types:
            problems.append(
                f"{where}.{key}: bool where {'/'.join(t.__name__ for t in types)} expected"
            )
        elif not isinstance(obj[key], types):
            problems.append(
                f"{where}.{key}: {type(obj[key]).__name__} not "
                f"{'/'.join(t.__name__ for t in types)}"
            )


def _check_timing(entry: Any, where: str, problems: list[str]) -> None:
    _check(entry, LATENCY_KEYS, where, problems)
    if isinstance(entry, dict) and entry.get("status") == "ok":
        _check(entry, STATS_KEYS, where, problems)


def validate_report(report: Any) -> list[str]:
    """Problems of a report against schema ``qtseg.bench.report/1`` (empty list = valid)."""
    problems: list[str] = []
    _check(report, TOP_KEYS, "report", problems)
    if problems:
        return problems
    if report["schema"] != SCHEMA:
        problems.append(f"report.schema is {report['schema']!r}, expected {SCHEMA!r}")
    _check(report["system"], SYSTEM_KEYS, "system", problems)
    if isinstance(report["system"], dict):
        _check(report["system"].get("cpu"), CPU_KEYS, "system.cpu", problems)
    for i, model in enumerate(report["models"]):
        _check(model, MODEL_KEYS, f"models[{i}]", problems)
    for i, row in enumerate(report["rows"]):
        where = f"rows[{i}]"
        _check(row, ROW_KEYS, where, problems)
        if not isinstance(row, dict):
            continue
        if row.get("status") not in STATUSES:
            problems.append(f"{where}.status {row.get('status')!r} not one of {STATUSES}")
        if row.get("status") == "not_executed" and (
            row.get("latency") or row.get("accuracy") or row.get("parity")
        ):
            problems.append(f"{where}: a row that did not run carries numbers")
        if row.get("status") in ("not_executed", "error") and not row.get("reason"):
            problems.append(f"{where}: status {row.get('status')} without a reason")
        if row.get("accuracy") is not None:
            _check(row["accuracy"], ACCURACY_KEYS, f"{where}.accuracy", problems)
        if row.get("parity") is not None:
            _check(row["parity"], PARITY_KEYS, f"{where}.parity", problems)
        for j, entry in enumerate(row.get("latency") or []):
            _check_timing(entry, f"{where}.latency[{j}]", problems)
        if row.get("e2e") is not None:
            _check_timing(row["e2e"], f"{where}.e2e", problems)
        _check(row.get("memory"), MEMORY_KEYS, f"{where}.memory", problems)
    _check_recommendation(report.get("recommendation"), problems)
    return problems


def _check_recommendation(entries: Any, problems: list[str]) -> None:
    """``recommendation`` (added to schema /1 later: absent in older reports, checked when present)."""
    if entries is None:
        return
    if not isinstance(entries, list):
        problems.append(f"recommendation: expected a list, got {type(entries).__name__}")
        return
    for i, entry in enumerate(entries):
        _check(entry, ENTRY_KEYS, f"recommendation[{i}]", problems)
        if not isinstance(entry, dict):
            continue
        for j, cand in enumerate(entry.get("candidates") or []):
            _check(cand, CANDIDATE_KEYS, f"recommendation[{i}].candidates[{j}]", problems)
        if entry.get("row") is None and not entry.get("reason"):
            problems.append(f"recommendation[{i}]: no row and no reason")


# -- assembly -------------------------------------------------------------------
def _ok_entry(row: dict[str, Any], batch: int) -> dict[str, Any] | None:
    return next(
        (
            e
            for e in row.get("latency") or []
            if e.get("batch") == batch and e.get("status") == "ok"
        ),
        None,
    )


def add_ratios(rows: list[dict[str, Any]]) -> None:
    """Set ``speedup_vs_reference`` on every timed entry and ``reference_row`` on every row."""
    refs = {r["model"]: r for r in rows if r.get("is_reference") and r.get("status") in RUNNABLE}
    for row in rows:
        ref = refs.get(row.get("model"))
        row["reference_row"] = ref["id"] if ref else None
        for entry in row.get("latency") or []:
            if entry.get("status") != "ok":
                continue
            base = _ok_entry(ref, entry["batch"]) if ref else None
            entry["speedup_vs_reference"] = (
                base["p50_ms"] / entry["p50_ms"] if base and entry["p50_ms"] > 0 else None
            )
        e2e = row.get("e2e")
        if e2e and e2e.get("status") == "ok":
            base = ref.get("e2e") if ref else None
            ok = (
                base
                and base.get("status") == "ok"
                and base.get("batch") == e2e["batch"]
                and e2e["p50_ms"] > 0
            )
            e2e["speedup_vs_reference"] = base["p50_ms"] / e2e["p50_ms"] if ok else None


def summarize(rows: list[dict[str, Any]], batches: list[int]) -> list[dict[str, Any]]:
    """Per model and batch: the reference p50 and the fastest row that passed parity."""
    out = []
    for model in dict.fromkeys(r.get("model") for r in rows if r.get("model")):
        mine = [r for r in rows if r.get("model") == model]
        ref = next((r for r in mine if r.get("is_reference") and r.get("status") in RUNNABLE), None)
        by_batch = []
        for b in batches:
            candidates = [
                (e["p50_ms"], r["id"])
                for r in mine
                if not r.get("is_reference") and r["status"] == "ok"
                for e in [_ok_entry(r, b)]
                if e
            ]
            base = _ok_entry(ref, b) if ref else None
            best = min(candidates) if candidates else None
            by_batch.append(
                {
                    "batch": b,
                    "reference_p50_ms": base["p50_ms"] if base else None,
                    "best_row": best[1] if best else None,
                    "best_p50_ms": best[0] if best else None,
                    "speedup": base["p50_ms"] / best[0] if base and best and best[0] > 0 else None,
                }
            )
        out.append(
            {"model": model, "reference_row": ref["id"] if ref else None, "by_batch": by_batch}
        )
    return out


def build_report(
    *, command: str, config: dict[str, Any], system: dict[str, Any], result: dict[str, Any]
) -> dict[str, Any]:
    """The report dict (without plots) from :func:`qtseg.bench.runner.run_benchmark`'s result."""
    rows = result["rows"]
    add_ratios(rows)
    report = {
        "schema": SCHEMA,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "config": config,
        "system": system,
        "timing": TIMING,
        "threads": result["threads"],
        "memory_scope": result["memory_scope"],
        "models": result["models"],
        "rows": rows,
        "summary": summarize(rows, list(config.get("batches", [1]))),
        "recommendation": recommend(rows, list(config.get("batches", [1])), system.get("cpu") or {}),
        "plots": [],
        "plots_note": None,
    }
    return finite_or_none(report)


def write_report(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Validate and write ``report.json``; raises ``ValueError`` on a schema problem."""
    problems = validate_report(report)
    if problems:
        raise ValueError("report does not match its schema: " + "; ".join(problems[:5]))
    return atomic_write_text(
        Path(out_dir) / REPORT_JSON, json.dumps(report, indent=1, allow_nan=False) + "\n"
    )


def read_report(path: str | Path) -> dict[str, Any]:
    """Read and validate a ``report.json``."""
    data = json.loads(Path(path).read_text())
    problems = validate_report(data)
    if problems:
        raise ValueError(f"{path}: not a {SCHEMA} report: " + "; ".join(problems[:5]))
    return data
