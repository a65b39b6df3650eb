"""The bench's verdict for this machine: the fastest artifact that meets its accuracy floor.

For each model group of a report, every artifact row that ran is ranked by
its p50 latency at one batch size (batch 1 when it was timed, else the first
batch of the run). A row is **eligible** when its parity against PyTorch FP32
on the bench images was checked and passed the thresholds of its own
precision (:data:`qtseg.evaluation.THRESHOLDS`: fp32 agreement >= 99.99 %
and max |diff| <= 1e-3; fp16/bf16 agreement >= 99.9 % and |Dice change|
<= 0.1 pp; int8 agreement >= 98 %). The recommendation is the fastest
eligible row, with its speed-up over the group's PyTorch eager FP32 row of
the same run and the CPU's instruction sets, because the answer holds for
this CPU only (bf16 and INT8 speed depend on AVX512_BF16, VNNI and AMX).

Pure functions over report rows (dicts): nothing here measures or imports a
runtime.
"""

from __future__ import annotations

from typing import Any

_OPT_NUM = (int, float, type(None))
_OPT_STR = (str, type(None))
ENTRY_KEYS: dict[str, tuple[type, ...]] = {
    "model": (str,),
    "batch": (int,),
    "row": _OPT_STR,
    "target": _OPT_STR,
    "backend": _OPT_STR,
    "precision": _OPT_STR,
    "p50_ms": _OPT_NUM,
    "reference_row": _OPT_STR,
    "reference_p50_ms": _OPT_NUM,
    "speedup_vs_reference": _OPT_NUM,
    "agreement": _OPT_NUM,
    "dice_delta_pp": _OPT_NUM,
    "thresholds": (dict, type(None)),
    "cpu": (dict,),
    "reason": _OPT_STR,
    "candidates": (list,),
}
CANDIDATE_KEYS: dict[str, tuple[type, ...]] = {
    "row": (str,),
    "precision": _OPT_STR,
    "p50_ms": _OPT_NUM,
    "speedup_vs_reference": _OPT_NUM,
    "eligible": (bool,),
    "why_not": _OPT_STR,
}


def _entry(row: dict[str, Any], batch: int) -> dict[str, Any] | None:
    return next(
        (e for e in row.get("latency") or [] if e.get("batch") == batch and e.get("status") == "ok"),
        None,
    )


def why_not(row: dict[str, Any], batch: int) -> str | None:
    """Why ``row`` cannot be recommended at ``batch`` (``None``: it can)."""
    if row.get("status") != "ok":
        return f"{row.get('status')}: {row.get('reason')}"
    parity = row.get("parity")
    if parity is None:
        return "parity against PyTorch FP32 was not checked (no reference)"
    if not parity.get("passed"):
        return "below its accuracy floor: " + "; ".join(parity.get("failures") or ["failed"])
    if _entry(row, batch) is None:
        return f"not timed at batch {batch}"
    return None


def pick_batch(batches: list[int]) -> int:
    """Batch 1 when it was timed, else the first batch of the run."""
    return 1 if 1 in batches else int(batches[0])


def recommend_model(
    rows: list[dict[str, Any]], model: str, batch: int, cpu: dict[str, Any]
) -> dict[str, Any]:
    """The recommendation entry of one model group (see module doc).

    Args:
        rows: all report rows (ratios already set by ``report.add_ratios``).
        model: the group's key (``rows[].model``).
        batch: batch size the latencies are compared at.
        cpu: ``system.cpu`` of the report (model name and instruction-set flags).
    """
    mine = [r for r in rows if r.get("model") == model]
    ref = next((r for r in mine if r.get("is_reference")), None)
    ref_entry = _entry(ref, batch) if ref else None
    candidates = []
    for row in (r for r in mine if r.get("kind") == "artifact"):
        entry = _entry(row, batch) or {}
        reason = why_not(row, batch)
        candidates.append({
            "row": row["id"],
            "precision": row.get("precision"),
            "p50_ms": entry.get("p50_ms"),
            "speedup_vs_reference": entry.get("speedup_vs_reference"),
            "eligible": reason is None,
            "why_not": reason,
        })
    # eligible first, fastest first; rows without a latency last
    candidates.sort(key=lambda c: (not c["eligible"], c["p50_ms"] is None, c["p50_ms"] or 0.0))
    best = candidates[0] if candidates and candidates[0]["eligible"] else None
    out: dict[str, Any] = {
        "model": model,
        "batch": batch,
        "row": None,
        "target": None,
        "backend": None,
        "precision": None,
        "p50_ms": None,
        "reference_row": ref["id"] if ref else None,
        "reference_p50_ms": ref_entry["p50_ms"] if ref_entry else None,
        "speedup_vs_reference": None,
        "agreement": None,
        "dice_delta_pp": None,
        "thresholds": None,
        "cpu": {"model": cpu.get("model"), "flags": list(cpu.get("flags") or [])},
        "reason": None,
        "candidates": candidates,
    }
    if best is None:
        out["reason"] = (
            "no artifact ran and met its accuracy floor" if candidates else "no artifact in this run"
        )
        return out
    row = next(r for r in mine if r["id"] == best["row"])
    parity = row["parity"]
    out.update(
        row=row["id"],
        target=row.get("target"),
        backend=row.get("backend"),
        precision=row.get("precision"),
        p50_ms=best["p50_ms"],
        speedup_vs_reference=best["speedup_vs_reference"],
        agreement=parity.get("agreement"),
        dice_delta_pp=parity.get("dice_delta_pp"),
        thresholds=parity.get("thresholds"),
    )
    return out


def recommend(
    rows: list[dict[str, Any]], batches: list[int], cpu: dict[str, Any]
) -> list[dict[str, Any]]:
    """One recommendation per model group of the rows, in the order the groups appear."""
    batch = pick_batch(batches)
    models = dict.fromkeys(r["model"] for r in rows if r.get("model"))
    return [recommend_model(rows, m, batch, cpu) for m in models]


def _isa(cpu: dict[str, Any]) -> str:
    flags = [f for f in cpu.get("flags") or [] if f.startswith(("avx512", "amx", "avx_vnni"))]
    return ", ".join(flags) or "no AVX-512/AMX"


def describe(entry: dict[str, Any]) -> str:
    """One line for the terminal and report.md."""
    where = f"{entry['cpu'].get('model')} ({_isa(entry['cpu'])})"
    if entry["row"] is None:
        return f"no recommendation for {entry['model']} on {where}: {entry['reason']}"
    speed = entry["speedup_vs_reference"]
    ratio = f"{speed:.2f}x PyTorch eager FP32 in this run" if speed else "no PyTorch eager reference"
    floor = entry["thresholds"] or {}
    dice = entry["dice_delta_pp"]
    return (
        f"recommended for {entry['model']} on {where}: {entry['row']} "
        f"({entry['backend']}, {entry['precision']}), p50 {entry['p50_ms']:.2f} ms at batch "
        f"{entry['batch']}, {ratio}; agreement {100 * entry['agreement']:.3f} % "
        f"(floor {100 * floor.get('min_agreement', 0):g} %)"
        + (f", Dice change {dice:+.3f} pp" if dice is not None else "")
    )


def markdown(entries: list[dict[str, Any]]) -> list[str]:
    """The ``## Recommendation`` section of report.md."""
    lines = ["## Recommendation", ""]
    if not entries:
        return [*lines, "No model group in this run.", ""]
    for entry in entries:
        lines += [describe(entry), "", "| rank | row | precision | p50 ms | vs ref | eligible |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for i, c in enumerate(entry["candidates"], 1):
            p50 = "-" if c["p50_ms"] is None else f"{c['p50_ms']:.2f}"
            speed = "-" if c["speedup_vs_reference"] is None else f"{c['speedup_vs_reference']:.2f}x"
            verdict = "yes" if c["eligible"] else f"no: {c['why_not']}"
            lines.append(f"| {i} | {c['row']} | {c['precision'] or '-'} | {p50} | {speed} | {verdict} |")
        lines.append("")
    legend = (
        "Eligible: parity against PyTorch FP32 on the bench images checked and within the "
        "thresholds of the row's precision; ranked by p50 at the batch shown. The ratio and the "
        "ranking hold for this CPU (instruction sets above) and this run's load."
    )
    lines += [legend, ""]
    return lines
