"""PNG plots of a report: Dice vs latency per backend, latency vs batch size.

matplotlib is optional (``pip install 'qtseg[bench]'``); without it the
report says so and no PNG is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtseg.bench.markdown import row_label

DICE_VS_LATENCY = "dice_vs_latency.png"
LATENCY_VS_BATCH = "latency_vs_batch.png"


def _ok(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in row.get("latency") or [] if e.get("status") == "ok"]


def _label(row: dict[str, Any]) -> str:
    return f"{row_label(row)} ({row['device']})"


def write_plots(report: dict[str, Any], out_dir: str | Path) -> tuple[list[str], str | None]:
    """Write the plots; returns their file names and a note (why none, or ``None``)."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return [], "not written: matplotlib is not installed (pip install 'qtseg[bench]')"
    out = Path(out_dir)
    rows = [r for r in report["rows"] if r["status"] in ("ok", "parity_failed") and _ok(r)]
    if not rows:
        return [], "not written: no row was timed"
    written = []
    batch = report["config"]["batches"][0]

    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = 0
    for row in rows:
        entry = next((e for e in _ok(row) if e["batch"] == batch), None)
        acc = row.get("accuracy")
        if entry is None or acc is None:
            continue
        marker = "s" if row["kind"] == "torch" else "o"
        ax.scatter(entry["p50_ms"], 100 * acc["dice"], marker=marker, s=50, label=_label(row))
        points += 1
    if points:
        ax.set_xscale("log")
        ax.margins(x=0.1)
        ax.legend(fontsize=7, loc="best")
        ax.set_xlabel(f"p50 latency, batch {batch} (ms, log scale)")
        ax.set_ylabel("Dice vs ground truth (%)")
        ax.set_title("Dice vs latency per backend (squares: PyTorch)")
        ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / DICE_VS_LATENCY, dpi=120)
        written.append(DICE_VS_LATENCY)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for row in rows:
        entries = sorted(_ok(row), key=lambda e: e["batch"])
        ax.plot(
            [e["batch"] for e in entries],
            [e["p50_ms"] for e in entries],
            marker="o",
            label=_label(row),
        )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xlabel("batch size")
    ax.set_ylabel("p50 latency per call (ms)")
    ax.set_title("Latency vs batch size")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / LATENCY_VS_BATCH, dpi=120)
    plt.close(fig)
    written.append(LATENCY_VS_BATCH)
    return written, None
