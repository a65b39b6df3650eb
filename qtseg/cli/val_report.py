"""What ``qtseg-val`` writes: ``per_image.csv``, ``summary.json`` (schema ``qtseg.val/1``),
``summary.md`` and the terminal table (pure formatting, no measuring)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from qtseg.atomic import atomic_write_text, finite_or_none
from qtseg.provenance import cpu_description, package_versions
from qtseg.timing import PERCENTILE_RULE
from qtseg.validation import CI_LEVEL, CI_METHOD, CI_RESAMPLES, PassResult

SCHEMA = "qtseg.val/1"
CSV, JSON, MD = "per_image.csv", "summary.json", "summary.md"
CSV_FIELDS = (
    "model", "name", "height", "width", "status", "dice", "iou", "mae", "foreground",
    "foreground_truth", "agreement", "dice_reference", "model_ms", "e2e_ms", "error",
)
TIMING = {
    "model_only": "Backend.infer of each call (preprocessed float32 batch in, logits out, host "
    "arrays) over the images of the pass, after --warmup untimed calls",
    "end_to_end": "preprocess (decoded uint8 RGB in) + infer + postprocess (logits resized to "
    "the original size, arg-max) of the same calls; image decoding excluded",
    "clock": "time.perf_counter; both times come from the same calls, so end-to-end >= model-only",
    "percentiles": PERCENTILE_RULE,
}


def describe_target(opened: Any) -> dict[str, Any]:
    """Path, kind, target, runtime, precision and device of an opened checkpoint/artifact."""
    m = opened.manifest
    info = opened.backend.describe()
    return {
        "path": str(opened.path),
        "kind": "checkpoint" if m is None else "artifact",
        "target": "torch-fp32" if m is None else m.target,
        "runtime": "torch" if m is None else m.runtime.name,
        "precision": "fp32" if m is None else m.precision,
        "device": str(info.get("device", "?")).lower(),
    }


def verdict(summaries: list[dict[str, Any]], min_dice: float | None) -> dict[str, Any]:
    """``{"passed", "problems"}``: failed images, nothing scored, or means below ``min_dice`` fail the run."""
    problems = []
    for s in summaries:
        if not s["num_scored"]:
            problems.append(f"{s['label']}: no image could be scored")
        if s["num_failed"]:
            problems.append(f"{s['label']}: failed on {s['num_failed']} image(s)")
        if min_dice is not None and (s["dice"] is None or s["dice"] < min_dice):
            dice = "no Dice" if s["dice"] is None else f"Dice {s['dice']:.4f}"
            problems.append(f"{s['label']}: {dice} is below --min-dice {min_dice:g}")
    return {"passed": not problems, "problems": problems}


def build(
    *,
    command: str,
    data: str,
    data_note: str,
    result: PassResult,
    summaries: list[dict[str, Any]],
    skipped: dict[str, str],
    min_dice: float | None,
    load: tuple[list[float] | None, list[float] | None],
    seed: int,
) -> dict[str, Any]:
    """The ``summary.json`` dict."""
    return finite_or_none({
        "schema": SCHEMA,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": command,
        "data": {
            "dir": data,
            "selection": data_note,
            "num_images": result.num_samples,
            "unreadable": [f.__dict__ for f in result.unreadable],
        },
        "system": {
            "cpu": cpu_description(),
            "versions": package_versions(),
            "load_average_before": load[0],
            "load_average_after": load[1],
        },
        "ci": {"level": CI_LEVEL, "resamples": CI_RESAMPLES, "method": CI_METHOD, "seed": seed},
        "timing": TIMING,
        "results": summaries,
        "not_run": skipped,
        "min_dice": min_dice,
        "verdict": verdict(summaries, min_dice),
    })


def _pct(value: Any, digits: int = 2) -> str:
    return "-" if value is None else f"{100 * value:.{digits}f}"


def _with_ci(s: dict[str, Any], key: str) -> str:
    ci = s.get(f"{key}_ci")
    if s.get(key) is None:
        return "-"
    return f"{_pct(s[key])} [{_pct(ci[0])}, {_pct(ci[1])}]" if ci else _pct(s[key])


def _ms(block: Any) -> str:
    return "-" if not block else f"{block['p50_ms']:.2f}"


def _status(s: dict[str, Any], min_dice: float | None) -> str:
    parts = []
    if s["num_failed"]:
        parts.append(f"{s['num_failed']} failed")
    if min_dice is not None and (s["dice"] is None or s["dice"] < min_dice):
        parts.append("below --min-dice")
    return ", ".join(parts) or "ok"


def table(report: dict[str, Any]) -> list[str]:
    """The summary table (Markdown; also what the terminal shows)."""
    header = ["model", "runtime", "precision", "device", "images", "Dice % [95% CI]",
              "IoU % [95% CI]", "MAE %", "agreement %", "dDice pp", "model p50 ms",
              "e2e p50 ms", "status"]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for s in report["results"]:
        delta = s.get("dice_delta_pp")
        row = [
            s["label"], s["runtime"], s["precision"], s["device"], str(s["num_scored"]),
            _with_ci(s, "dice"), _with_ci(s, "iou"), _pct(s.get("mae")),
            _pct(s.get("agreement"), 3), "-" if delta is None else f"{delta:+.3f}",
            _ms(s.get("latency")), _ms(s.get("e2e")), _status(s, report["min_dice"]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    for label, reason in report["not_run"].items():
        lines.append(f"| {label} | " + " | ".join(["-"] * 11) + f" | not run here: {reason} |")
    return lines


def render_markdown(report: dict[str, Any]) -> str:
    """The whole ``summary.md``."""
    cpu = report["system"]["cpu"]
    versions = ", ".join(f"{k} {v}" for k, v in report["system"]["versions"].items())
    data = report["data"]
    notes = [
        f"- command: `{report['command']}`",
        f"- data: {data['selection']}; unreadable images skipped: {len(data['unreadable'])}",
        (f"- CPU: {cpu['model']} ({cpu['usable_cpus']} usable CPUs; flags: "
        f"{', '.join(cpu['flags']) or 'none'})"),
        (f"- load average (1/5/15 min) before: {report['system']['load_average_before']}, "
        f"after: {report['system']['load_average_after']}"),
        f"- versions: {versions}",
        f"- created: {report['created_utc']}",
    ]
    for s in report["results"]:
        if s.get("reference_note"):
            notes.append(f"- {s['label']}: no agreement: {s['reference_note']}")
        elif s.get("reference"):
            notes.append(f"- {s['label']}: reference {s['reference']}")
    legend = (
        "Dice/IoU/MAE: mean over images at each image's original size against the ground truth; "
        f"[95% CI]: {CI_METHOD} ({CI_RESAMPLES} resamples). agreement: pixels whose class equals "
        "the PyTorch FP32 reference's, at the model's input resolution (qtseg.evaluation."
        "agreement); dDice: Dice minus the reference's Dice on the same images, percentage "
        "points. model p50: infer only; e2e p50: preprocess + infer + postprocess of the same "
        "calls (decoding excluded)."
    )
    verdict_lines = ["", "Verdict: " + ("PASS" if report["verdict"]["passed"] else "FAIL")]
    verdict_lines += [f"- {p}" for p in report["verdict"]["problems"]]
    return "\n".join(
        ["# qtseg-val", "", *notes, "", *table(report), "", legend, *verdict_lines, ""]
    )


def per_image_csv(result: PassResult) -> str:
    """``per_image.csv``: one row per model and image (failed and unreadable images included)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\n")
    writer.writeheader()
    for label, res in result.candidates.items():
        for r in res.records:
            row = {k: v for k, v in r.to_dict().items() if k in CSV_FIELDS}
            writer.writerow({**row, "model": label, "status": "ok", "error": ""})
        for f in [*res.failures, *result.unreadable]:
            status = "unreadable" if f.stage == "read" else "failed"
            writer.writerow({"model": label, "name": f.name, "status": status, "error": f.message})
    return buf.getvalue()


def write_all(report: dict[str, Any], result: PassResult, out: Path) -> None:
    """Write ``per_image.csv``, ``summary.json`` and ``summary.md`` into ``out`` (atomically)."""
    atomic_write_text(out / CSV, per_image_csv(result))
    atomic_write_text(out / JSON, json.dumps(report, indent=1, allow_nan=False) + "\n")
    atomic_write_text(out / MD, render_markdown(report))
