"""``--compare OLD_report.json``: per-row ratios against an earlier report, for CI.

Rows are matched by ``id`` and timings by batch size. A regression is:

- p50 latency ratio new/old above ``1 + max_regression`` (model-only, every
  batch, and end-to-end);
- Dice vs ground truth lower by more than ``max_dice_drop_pp`` percentage points;
- a row that was ``ok`` and no longer is (parity failed, error, not executed).

Rows present in only one report are listed, not counted as regressions.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class CompareLimits:
    """Thresholds of :func:`compare_reports`."""

    max_regression: float = 0.2
    max_dice_drop_pp: float = 0.5


@dataclass
class Comparison:
    """Per-row lines and the regressions found."""

    lines: list[dict[str, Any]] = field(default_factory=list)
    regressions: list[str] = field(default_factory=list)
    only_old: list[str] = field(default_factory=list)
    only_new: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        """No regression beyond the limits."""
        return not self.regressions


def _timed(row: dict[str, Any]) -> dict[str, dict[str, Any]]:
    out = {f"b{e['batch']}": e for e in row.get("latency") or [] if e.get("status") == "ok"}
    e2e = row.get("e2e")
    if e2e and e2e.get("status") == "ok":
        out[f"e2e b{e2e['batch']}"] = e2e
    return out


def compare_reports(
    old: dict[str, Any], new: dict[str, Any], limits: CompareLimits = CompareLimits()
) -> Comparison:
    """Compare two reports row by row (see module doc)."""
    result = Comparison()
    old_rows = {r["id"]: r for r in old["rows"]}
    new_rows = {r["id"]: r for r in new["rows"]}
    result.only_old = [i for i in old_rows if i not in new_rows]
    result.only_new = [i for i in new_rows if i not in old_rows]
    for rid, new_row in new_rows.items():
        old_row = old_rows.get(rid)
        if old_row is None:
            continue
        if old_row["status"] == "ok" and new_row["status"] != "ok":
            result.regressions.append(
                f"{rid}: status ok -> {new_row['status']} ({new_row.get('reason')})"
            )
        old_t, new_t = _timed(old_row), _timed(new_row)
        for key in [k for k in new_t if k in old_t]:
            ratio = (
                new_t[key]["p50_ms"] / old_t[key]["p50_ms"] if old_t[key]["p50_ms"] > 0 else None
            )
            result.lines.append(
                {
                    "row": rid,
                    "what": f"p50 {key}",
                    "old": old_t[key]["p50_ms"],
                    "new": new_t[key]["p50_ms"],
                    "ratio": ratio,
                }
            )
            if ratio is not None and ratio > 1.0 + limits.max_regression:
                result.regressions.append(
                    f"{rid}: p50 {key} {old_t[key]['p50_ms']:.3f} -> {new_t[key]['p50_ms']:.3f} ms "
                    f"(x{ratio:.2f} > x{1 + limits.max_regression:.2f})"
                )
        old_acc, new_acc = old_row.get("accuracy"), new_row.get("accuracy")
        if old_acc and new_acc:
            ratio = new_acc["dice"] / old_acc["dice"] if old_acc["dice"] > 0 else None
            result.lines.append(
                {
                    "row": rid,
                    "what": "Dice",
                    "old": old_acc["dice"],
                    "new": new_acc["dice"],
                    "ratio": ratio,
                }
            )
            drop_pp = 100.0 * (old_acc["dice"] - new_acc["dice"])
            if drop_pp > limits.max_dice_drop_pp:
                result.regressions.append(
                    f"{rid}: Dice {100 * old_acc['dice']:.2f}% -> {100 * new_acc['dice']:.2f}% "
                    f"(-{drop_pp:.2f} pp > {limits.max_dice_drop_pp:g} pp)"
                )
    return result


def format_comparison(result: Comparison) -> str:
    """Markdown table of the ratios, then the verdict."""
    lines = ["| row | metric | old | new | new/old |", "| --- | --- | --- | --- | --- |"]
    for line in result.lines:
        ratio = "-" if line["ratio"] is None else f"{line['ratio']:.3f}"
        lines.append(
            f"| {line['row']} | {line['what']} | {line['old']:.4g} | {line['new']:.4g} | {ratio} |"
        )
    for rid in result.only_old:
        lines.append(f"only in the old report: {rid}")
    for rid in result.only_new:
        lines.append(f"only in the new report: {rid}")
    if result.regressions:
        lines.append(f"REGRESSION ({len(result.regressions)}):")
        lines += [f"  - {r}" for r in result.regressions]
    else:
        lines.append("no regression beyond the limits")
    return "\n".join(lines)
