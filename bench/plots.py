"""PNG plots of a report: Dice vs latency per backend, latency vs batch size.

Dice is drawn with its 95 % interval on a plain axis at least two points
tall; the latency curve is drawn only when two or more batch sizes were timed.

matplotlib is optional (``pip install 'qtseg[bench]'``); without it the
report says so and no PNG is written.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtseg.bench.markdown import row_label

DICE_VS_LATENCY = "dice_vs_latency.png"
LATENCY_VS_BATCH = "latency_vs_batch.png"
MIN_DICE_SPAN_PP = 2.0


def _ok(row: dict[str, Any]) -> list[dict[str, Any]]:
    return [e for e in row.get("latency") or [] if e.get("status") == "ok"]


def _label(row: dict[str, Any]) -> str:
    return f"{row_label(row)} ({row['device']})"


def dice_limits(low: float, high: float) -> tuple[float, float]:
    """Y limits (percent) around ``[low, high]``, at least :data:`MIN_DICE_SPAN_PP` tall, in [0, 100].

    So that differences of a few thousandths of a point do not fill the plot.
    """
    half = max((high - low) / 2, MIN_DICE_SPAN_PP / 2)
    middle = min(max((low + high) / 2, half), 100.0 - half)
    return middle - half, middle + half


def dice_figure(plt: Any, rows: list[dict[str, Any]], batch: int) -> Any:
    """Dice (with its 95 % interval) against p50 latency at ``batch``; ``None`` without points."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    points = 0
    for row in rows:
        entry = next((e for e in _ok(row) if e["batch"] == batch), None)
        acc = row.get("accuracy")
        if entry is None or acc is None:
            continue
        dice = 100 * acc["dice"]
        ci = acc.get("dice_ci")
        yerr = [[dice - 100 * ci[0]], [100 * ci[1] - dice]] if ci else None
        ax.errorbar(entry["p50_ms"], dice, yerr=yerr, fmt="s" if row["kind"] == "torch" else "o",
                    ms=7, capsize=3, label=_label(row))
        points += 1
    if not points:
        plt.close(fig)
        return None
    ax.set_xscale("log")
    ax.margins(x=0.1)
    ax.ticklabel_format(axis="y", style="plain", useOffset=False)  # no "+8.89e1" offset
    ax.set_ylim(*dice_limits(*ax.get_ylim()))
    ax.legend(fontsize=7, loc="best")
    ax.set_xlabel(f"p50 latency, batch {batch} (ms, log scale)")
    ax.set_ylabel("Dice vs ground truth (%), 95% interval where known")
    ax.set_title("Dice vs latency per backend (squares: PyTorch)")
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig


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

    notes = []
    fig = dice_figure(plt, rows, batch)
    if fig is not None:
        fig.savefig(out / DICE_VS_LATENCY, dpi=120)
        plt.close(fig)
        written.append(DICE_VS_LATENCY)
    else:
        notes.append(f"{DICE_VS_LATENCY} not drawn: no row has both accuracy and latency")

    if len({e["batch"] for r in rows for e in _ok(r)}) < 2:
        notes.append(f"{LATENCY_VS_BATCH} not drawn: one batch size was timed "
                     "(pass --batch 1,8,32 for a curve)")
        return written, "; ".join(notes)
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
    return written, "; ".join(notes) or None
