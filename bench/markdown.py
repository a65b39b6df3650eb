"""``report.md``: the human-readable tables of a report (pure formatting, no measuring)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qtseg.atomic import atomic_write_text
from qtseg.bench import recommend

REPORT_MD = "report.md"


def _num(value: Any, fmt: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, fmt)


def _status(row: dict[str, Any]) -> str:
    status = row["status"]
    if status == "ok":
        return "ok"
    if status == "parity_failed":
        return f"PARITY FAIL: {row['reason']}"
    return f"{status.replace('_', ' ')}: {row['reason']}"


def _first_ok(row: dict[str, Any], batch: int) -> dict[str, Any] | None:
    return next(
        (e for e in row.get("latency") or [] if e["batch"] == batch and e["status"] == "ok"), None
    )


def row_label(row: dict[str, Any]) -> str:
    """Short name of a report row: ``torch <variant>``, or the target (and its variant)."""
    if row["kind"] == "torch":
        return f"torch {row['variant']}" + (" (reference)" if row["is_reference"] else "")
    name = str(row.get("target") or row["id"])
    return f"{name} + {row['variant']}" if row.get("variant") else name


def _peak(row: dict[str, Any]) -> Any:
    mem = row.get("memory") or {}
    if (
        str(row.get("device", "")).startswith("cuda")
        and mem.get("peak_gpu_allocated_mb") is not None
    ):
        return mem["peak_gpu_allocated_mb"]
    return mem.get("peak_rss_mb")


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return lines


def main_table(report: dict[str, Any], batch: int | None = None) -> list[str]:
    """The Ultralytics-style table at one batch size (default: the first timed one)."""
    batch = batch or report["config"]["batches"][0]
    body = []
    for row in report["rows"]:
        entry = _first_ok(row, batch) or {}
        acc = row.get("accuracy") or {}
        par = row.get("parity") or {}
        body.append(
            [
                str(row.get("model") or "-"),
                row_label(row),
                str(row.get("backend")),
                str(row.get("precision") or "-"),
                str(row.get("device")),
                _num(row.get("size_mb"), ".1f"),
                _num(acc.get("dice"), ".2f", 100),
                _num(acc.get("iou"), ".2f", 100),
                _num(par.get("agreement"), ".3f", 100),
                _num(par.get("max_abs_diff"), ".2e"),
                _num(entry.get("p50_ms"), ".2f"),
                _num(entry.get("img_per_s"), ".1f"),
                _num(entry.get("speedup_vs_reference"), ".2f")
                + ("x" if entry.get("speedup_vs_reference") else ""),
                _num(_peak(row), ".0f"),
                _status(row),
            ]
        )
    header = [
        "model",
        "row",
        "backend",
        "precision",
        "device",
        "size MB",
        "Dice %",
        "IoU %",
        "agreement %",
        "max abs diff",
        f"p50 ms (b{batch})",
        "img/s",
        "vs ref",
        "peak MB",
        "status",
    ]
    return _table(header, body)


def latency_table(report: dict[str, Any]) -> list[str]:
    """Every timed batch size of every row."""
    body = []
    for row in report["rows"]:
        for e in row.get("latency") or []:
            if e["status"] != "ok":
                body.append(
                    [row["id"], str(e["batch"])] + ["-"] * 6 + [f"{e['status']}: {e['reason']}"]
                )
                continue
            body.append(
                [
                    row["id"],
                    str(e["batch"]),
                    f"{e['p50_ms']:.2f}",
                    f"{e['p90_ms']:.2f}",
                    f"{e['p99_ms']:.2f}",
                    f"{e['mean_ms']:.2f} ± {e['std_ms']:.2f}",
                    _num(e.get("img_per_s"), ".1f"),
                    _num(e.get("speedup_vs_reference"), ".2f"),
                    f"{e['timer']}, n={e['n']}",
                ]
            )
    header = [
        "row",
        "batch",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "mean ± std ms",
        "img/s",
        "vs ref",
        "timer",
    ]
    return _table(header, body)


def e2e_table(report: dict[str, Any]) -> list[str]:
    """End-to-end latency (pre + inference + post) next to model-only p50."""
    body = []
    for row in report["rows"]:
        e = row.get("e2e")
        if not e or e.get("status") != "ok":
            continue
        model_only = _first_ok(row, e["batch"]) or {}
        body.append(
            [
                row["id"],
                str(e["batch"]),
                f"{e['p50_ms']:.2f}",
                f"{e['p90_ms']:.2f}",
                _num(e.get("img_per_s"), ".1f"),
                _num(model_only.get("p50_ms"), ".2f"),
                _num(e.get("speedup_vs_reference"), ".2f"),
            ]
        )
    return _table(
        ["row", "batch", "e2e p50 ms", "e2e p90 ms", "img/s", "model-only p50 ms", "vs ref"], body
    )


def e2e_notes(report: dict[str, Any]) -> list[str]:
    """Why an end-to-end p50 can be below the model-only p50 of the same row, when it is."""
    below = []
    for row in report["rows"]:
        e = row.get("e2e")
        model_only = _first_ok(row, e["batch"]) if e and e.get("status") == "ok" else None
        if model_only and e["p50_ms"] < model_only["p50_ms"]:
            below.append(f"{row['id']} ({e['p50_ms']:.2f} < {model_only['p50_ms']:.2f} ms, "
                         f"n = {e['n']} / {model_only['n']})")
    if not below:
        return []
    return [
        "",
        "End-to-end p50 below model-only p50: " + "; ".join(below) + ". End-to-end includes "
        "the model call, so this is measurement noise, not a faster pipeline: the two are "
        "separate timing loops (model-only first, end-to-end after it), each of few calls, "
        f"on a machine whose load is recorded above ({_load_text(report)}). Compare p50s "
        "with more --iters / --e2e-iters on an idle machine; qtseg-val times both on the same "
        "calls, where end-to-end >= model-only always holds.",
    ]


def _load_text(report: dict[str, Any]) -> str:
    load = report["system"].get("load_average") or {}
    return f"1/5/15-min load average before {load.get('before')}, after {load.get('after')}"


def models_table(report: dict[str, Any]) -> list[str]:
    """Complexity per model."""
    body = [
        [
            m["key"],
            "x".join(str(v) for v in m["input_shape"][1:]),
            f"{m['params']:,}",
            f"{m['macs'] / 1e9:.3f} G",
            f"{m['flops'] / 1e9:.3f} G",
            m["weights"],
            str(m["checkpoint"] or m["checkpoint_note"]),
        ]
        for m in report["models"]
    ]
    return _table(["model", "input", "params", "MACs", "FLOPs", "weights", "checkpoint"], body)


def layers_table(model: dict[str, Any]) -> list[str]:
    """Per-layer MACs and parameters of one model (``--layers``)."""
    total = max(model["macs"], 1)
    body = [
        [f"`{r['module']}`", f"{r['macs']:,}", f"{100 * r['macs'] / total:.2f}", f"{r['params']:,}"]
        for r in model.get("layers") or []
    ]
    return _table(["module", "MACs", "% MACs", "params"], body)


def _busy(report: dict[str, Any]) -> bool:
    load = report["system"].get("load_average") or {}
    cpus = report["system"]["cpu"].get("usable_cpus") or 1
    return any(v and v[0] > cpus for v in (load.get("before"), load.get("after")))


def render(report: dict[str, Any]) -> str:
    """The whole ``report.md``."""
    sysinfo = report["system"]
    cpu = sysinfo["cpu"]
    gpu = sysinfo.get("gpu")
    versions = ", ".join(f"{k} {v}" for k, v in sysinfo["versions"].items())
    config = report["config"]
    gpu_text = f"{gpu['name']} (sm {gpu['capability']}, CUDA {gpu['cuda']})" if gpu else "none used"
    cpu_text = (
        f"{cpu['model']} ({cpu['usable_cpus']} usable CPUs; "
        f"flags: {', '.join(cpu['flags']) or 'none'}); "
        f"threads per runtime: {report['threads']}"
    )
    runs = (
        f"warm-up {config['warmup']}, timed calls {config['iters']} per batch size; "
        f"{config['num_images']} images for parity; accuracy on "
        + (f"{config['data']} ({config.get('split') or 'default split'})" if config.get("data")
           else "the same images")
        + f"; peak memory scope: {report['memory_scope']}"
    )
    legend = (
        "Dice/IoU: against ground truth at original size; agreement and max abs diff: "
        "against PyTorch FP32 on CPU (the export gate's reference and thresholds). "
        "vs ref: p50 speed-up over the model's PyTorch eager FP32 row in this run. "
        "peak MB: GPU allocated for CUDA PyTorch rows, else peak RSS "
        "of the row."
    )
    e2e_legend = (
        "Decoded RGB image in, label map at original size out (preprocess + inference + "
        "postprocess; JPEG decoding excluded)."
    )
    lines = [
        "# qtseg-bench report",
        "",
        f"- created: {report['created_utc']}",
        f"- command: `{report['command']}`",
        f"- CPU: {cpu_text}",
        f"- GPU: {gpu_text}",
        f"- versions: {versions}",
        f"- machine load: {_load_text(report)} on {cpu['usable_cpus']} usable CPUs"
        + (" (busier than its CPUs: latencies include waiting for a CPU)" if _busy(report) else ""),
        f"- {runs}",
        "",
        "## Results",
        "",
        *main_table(report),
        "",
        legend,
        "",
        *recommend.markdown(report.get("recommendation") or []),
        "## Latency by batch size",
        "",
        *latency_table(report),
        "",
        "## End-to-end latency",
        "",
        e2e_legend,
        "",
        *e2e_table(report),
        *e2e_notes(report),
        "",
        "## Model complexity",
        "",
        *models_table(report),
        "",
    ]
    for model in report["models"]:
        if model.get("layers"):
            lines += [f"### Layers of {model['key']}", "", *layers_table(model), ""]
    if report.get("plots"):
        lines += ["## Plots", ""] + [f"![{p}]({p})" for p in report["plots"]] + [""]
    if report.get("plots_note"):
        lines += [f"Plots: {report['plots_note']}", ""]
    return "\n".join(lines)


def write_markdown(report: dict[str, Any], out_dir: str | Path) -> Path:
    """Write ``report.md``."""
    return atomic_write_text(Path(out_dir) / REPORT_MD, render(report))
