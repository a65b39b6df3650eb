"""Plan the rows of a benchmark, compute each model's reference and complexity, run the rows.

The parent process computes, per model group, the PyTorch FP32 CPU logits of
the sample images (the export gate's reference) and the model complexity; each
row then runs in a fresh worker process (``isolate=True``, the default) so its
peak RSS is its own. The PyTorch eager FP32 row of the requested device is the
speed reference of its group.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import qtseg
from qtseg.backends import RUNTIMES
from qtseg.bench.config import BenchConfig
from qtseg.bench.discover import ModelGroup, checkpoint_group, discover, group_artifacts
from qtseg.bench.rows import ERROR, NOT_EXECUTED, RowSpec, failed_row, run_row, save_logits
from qtseg.bench.system import default_threads
from qtseg.bench.torch_variants import REFERENCE_VARIANT, variants_for

DEFAULT_EXPORT_DIR = "exports"
THREAD_ENV = ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS")
Log = Callable[[str], None]


class PlanError(ValueError):
    """Nothing to benchmark, or the inputs cannot be used."""


def images_dir(data: str | None) -> Path:
    """Image folder of ``--data`` (images, or a folder holding ``images/``); default: bundled."""
    if data is None:
        return qtseg.SAMPLES_DIR / "images"
    path = Path(data)
    return path / "images" if (path / "images").is_dir() else path


def model_complexity(group: ModelGroup, *, layers: bool) -> dict[str, Any]:
    """Parameters, MACs and FLOPs of the group's model at its input size (own counter)."""
    from qtseg.models import create
    from qtseg.models.complexity import measure

    model = create(group.name, **group.config)
    h, w = group.spec.input_size
    result = measure(model, (1, 3, h, w))
    entry: dict[str, Any] = {
        **result.to_dict(),
        "counter": "qtseg.models.complexity: 1 MAC per multiply-add of conv/matmul/attention "
        "(fvcore convention); FLOPs = 2 x MACs",
        "layers": None,
    }
    if layers:
        owned = {
            name or "(top)": sum(p.numel() for p in mod.parameters(recurse=False))
            for name, mod in model.named_modules()
        }
        entry["layers"] = [
            {"module": name, "macs": int(result.per_module.get(name, 0)), "params": int(params)}
            for name, params in owned.items()
            if params or result.per_module.get(name)
        ]
    return entry


def _reference_logits(
    group: ModelGroup, cfg: BenchConfig, workdir: Path, log: Log
) -> tuple[str | None, str | None]:
    """``.npz`` of PyTorch FP32 CPU logits on the samples, or ``(None, why not)``."""
    if group.checkpoint is None:
        return None, group.checkpoint_note
    from qtseg.backends import open_backend
    from qtseg.evaluation import SampleSet, infer_logits

    log(f"[{group.key}] PyTorch FP32 CPU reference logits ({group.checkpoint})")
    try:
        samples = SampleSet.from_folder(images_dir(cfg.data), group.spec, limit=cfg.num_images)
        with open_backend(
            group.checkpoint, device="cpu", input_size=tuple(group.spec.input_size)
        ) as ref:
            logits = infer_logits(ref, samples.x)
    except Exception as exc:  # noqa: BLE001 - the rows then say why there is no parity
        return None, f"reference failed: {type(exc).__name__}: {exc}".splitlines()[0]
    path = save_logits(workdir / f"reference-{len(os.listdir(workdir))}.npz", samples.names, logits)
    return str(path), None


def _random_checkpoint(cfg: BenchConfig, workdir: Path) -> Path:
    import torch

    from qtseg.checkpoint import save_checkpoint
    from qtseg.models import create
    from qtseg.preprocess import PreprocessSpec

    torch.manual_seed(0)
    model = create(cfg.model, img_size=(cfg.imgsz, cfg.imgsz)).eval()
    return save_checkpoint(
        workdir / "random-checkpoint", model, PreprocessSpec(input_size=(cfg.imgsz, cfg.imgsz))
    )


def plan_groups(cfg: BenchConfig, workdir: Path) -> tuple[list[ModelGroup], list[tuple[Path, str]]]:
    """Model groups of the run and artifacts whose manifest cannot be read."""
    override = Path(cfg.checkpoint) if cfg.checkpoint else None
    if cfg.torch_only:
        if override is not None:
            ckpts = [override]
        elif cfg.paths:
            ckpts = discover(list(cfg.paths)).checkpoints
        elif qtseg.DEFAULT_CHECKPOINT.is_dir():
            ckpts = [qtseg.DEFAULT_CHECKPOINT]
        else:
            ckpts = []
        if not ckpts and not cfg.random_weights:
            raise PlanError(
                "no checkpoint to benchmark: pass --checkpoint DIR (or --random-weights)"
            )
        taken: set[str] = set()
        if ckpts:
            return [checkpoint_group(c, taken) for c in ckpts], []
        return [
            checkpoint_group(_random_checkpoint(cfg, workdir), taken, weights="random (seed 0)")
        ], []
    found = discover(list(cfg.paths) or [DEFAULT_EXPORT_DIR])
    if found.problems and not (found.artifacts or found.checkpoints):
        hint = "" if cfg.paths else " (run qtseg-export --target all first, or pass paths)"
        raise PlanError("; ".join(found.problems) + hint)
    groups, bad = group_artifacts(found.artifacts, override)
    taken = {g.key for g in groups}
    groups += [checkpoint_group(c, taken) for c in found.checkpoints]
    return groups, bad


def plan_rows(
    cfg: BenchConfig,
    groups: list[ModelGroup],
    references: dict[str, tuple[str | None, str | None]],
    threads: int,
) -> list[RowSpec]:
    """Row specs: per group the PyTorch rows of the device (reference first), then its artifacts.

    With ``cfg.cuda_graph`` an artifact whose runtime replays CUDA graphs gets
    a second row (id ``<dir>+graph@<device>``) right after its plain one.
    """
    common: dict[str, Any] = {
        "threads": threads,
        "batches": tuple(cfg.batches),
        "warmup": cfg.warmup,
        "iters": cfg.iters,
        "e2e_iters": cfg.e2e_iters,
        "images_dir": str(images_dir(cfg.data)),
        "num_images": cfg.num_images,
        "quiet": cfg.quiet,
        "data": cfg.data,
        "split": cfg.split,
    }
    device = cfg.device
    specs: list[RowSpec] = []
    ids: set[str] = set()

    def unique(base: str) -> str:
        rid, n = base, 2
        while rid in ids:
            rid, n = f"{base}#{n}", n + 1
        ids.add(rid)
        return rid

    for group in groups:
        ref_file, ref_note = references[group.key]
        torch_path = str(group.checkpoint) if group.checkpoint else ""
        for variant in variants_for(device):
            if cfg.variants and variant.name not in cfg.variants:
                continue
            specs.append(
                RowSpec(
                    id=unique(f"{group.key}_torch-{variant.name}@{device}"),
                    kind="torch",
                    path=torch_path,
                    model_key=group.key,
                    device=device,
                    variant=variant.name,
                    reference_logits=ref_file,
                    reference_note=ref_note,
                    preprocess=group.spec.to_dict(),
                    is_reference=variant.name == REFERENCE_VARIANT,
                    **common,
                )
            )
        for path, manifest in zip(group.artifacts, group.manifests):
            graph_too = (
                cfg.cuda_graph
                and device.startswith("cuda")
                and manifest.runtime.device in (None, "cuda")
                and RUNTIMES[manifest.runtime.name].cuda_graph
            )
            for graph in (False, True) if graph_too else (False,):
                specs.append(
                    RowSpec(
                        id=unique(f"{path.name}{'+graph' if graph else ''}@{device}"),
                        kind="artifact",
                        path=str(path),
                        model_key=group.key,
                        device=device,
                        reference_logits=ref_file,
                        reference_note=ref_note,
                        cuda_graph=graph,
                        **common,
                    )
                )
    return specs


def _worker_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    for name in THREAD_ENV:
        env[name] = str(threads)
    return env


def run_isolated(spec: RowSpec, workdir: Path, timeout_s: float) -> dict[str, Any]:
    """Run one row in ``python -m qtseg.bench.worker``; a dead or hung worker: ``error`` row."""
    import json

    index = len(list(workdir.glob("row-*.json")))
    spec_file = workdir / f"row-{index}.json"
    result_file = workdir / f"result-{index}.json"
    spec_file.write_text(json.dumps(spec.to_dict()))
    cmd = [sys.executable, "-m", "qtseg.bench.worker", str(spec_file), str(result_file)]
    try:
        proc = subprocess.run(
            cmd,
            env=_worker_env(spec.threads),
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return failed_row(spec, ERROR, f"timed out after {timeout_s:g} s")
    if result_file.is_file():
        return json.loads(result_file.read_text())
    return failed_row(
        spec, ERROR, f"worker process exited with code {proc.returncode} and no result"
    )


def _summary(row: dict[str, Any]) -> str:
    if row["status"] not in ("ok", "parity_failed"):
        return f"{row['status']}: {row['reason']}"
    parts = [row["status"]]
    first = next((e for e in row["latency"] if e.get("status") == "ok"), None)
    if first:
        parts.append(f"p50 {first['p50_ms']:.2f} ms @ batch {first['batch']}")
    if row.get("accuracy"):
        parts.append(f"Dice {100 * row['accuracy']['dice']:.2f}%")
    if row.get("parity"):
        parts.append(f"agreement {100 * row['parity']['agreement']:.3f}%")
    return ", ".join(parts)


def run_benchmark(cfg: BenchConfig, *, log: Log | None = None) -> dict[str, Any]:
    """Plan and run everything; returns the report's ``models`` and ``rows`` (plus ``threads``)."""
    log = log or (lambda m: None if cfg.quiet else print(m, file=sys.stderr, flush=True))
    threads = cfg.threads or default_threads()
    with tempfile.TemporaryDirectory(prefix="qtseg-bench-") as tmp:
        workdir = Path(tmp)
        groups, bad = plan_groups(cfg, workdir)
        if not groups and not bad:
            raise PlanError("nothing to benchmark")
        import torch

        previous_threads = torch.get_num_threads()
        torch.set_num_threads(threads)
        try:
            return _run(cfg, groups, bad, threads, workdir, log)
        finally:
            torch.set_num_threads(previous_threads)


def _run(
    cfg: BenchConfig,
    groups: list[ModelGroup],
    bad: list[tuple[Path, str]],
    threads: int,
    workdir: Path,
    log: Log,
) -> dict[str, Any]:
    models, references = [], {}
    for group in groups:
        log(f"[{group.key}] complexity at {group.spec.input_size[0]}x{group.spec.input_size[1]}")
        entry = {
            "key": group.key,
            "name": group.name,
            "config": group.config,
            "checkpoint": str(group.checkpoint) if group.checkpoint else None,
            "checkpoint_note": group.checkpoint_note,
            "weights": group.weights,
            "preprocess": group.spec.to_dict(),
            **model_complexity(group, layers=cfg.layers),
        }
        models.append(entry)
        references[group.key] = _reference_logits(group, cfg, workdir, log)
    specs = plan_rows(cfg, groups, references, threads)
    rows: list[dict[str, Any]] = []
    total = len(specs) + len(bad)
    for i, spec in enumerate(specs, 1):
        log(f"[{i}/{total}] {spec.id}")
        start = time.perf_counter()
        if spec.kind == "torch" and not spec.path:
            row = failed_row(spec, NOT_EXECUTED, spec.reference_note or "no checkpoint")
        elif cfg.isolate:
            row = run_isolated(spec, workdir, cfg.row_timeout_s)
        else:
            row = run_row(spec)
        log(f"[{i}/{total}] {spec.id}: {_summary(row)} ({time.perf_counter() - start:.1f} s)")
        rows.append(row)
    for path, problem in bad:
        spec = RowSpec(
            id=f"{path.name}@{cfg.device}",
            kind="artifact",
            path=str(path),
            model_key="",
            device=cfg.device,
            threads=threads,
            batches=tuple(cfg.batches),
            warmup=cfg.warmup,
            iters=cfg.iters,
            e2e_iters=cfg.e2e_iters,
            images_dir="",
            num_images=0,
        )
        row = failed_row(spec, ERROR, problem)
        row["model"] = None  # the manifest did not say which model
        rows.append(row)
    return {
        "threads": threads,
        "models": models,
        "rows": rows,
        "memory_scope": "row process (one worker process per row)"
        if cfg.isolate
        else "whole process (--no-isolate: includes earlier rows)",
    }
