"""Supervised training of a registered model on a folder-pair dataset.

The whole (resized) training set is decoded once and kept on the training
device; augmentation runs batched on that device, so a GPU is never waiting
for JPEG decoding. Validation each epoch uses the exact deployment pipeline
(preprocess -> model -> resize logits to the original size -> arg-max).
"""

from __future__ import annotations

import io
import json
import pickle
import random
import sys
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qtseg.atomic import atomic_write_bytes
from qtseg.backends import AUTO, auto_device
from qtseg.checkpoint import save_checkpoint
from qtseg.data.augment import AugmentConfig, augment_batch
from qtseg.data.folder import Sample, discover, load_pair, split_samples
from qtseg.evaluation import torch_predictor
from qtseg.models import create, make_config
from qtseg.preprocess import PreprocessSpec, resize_bilinear
from qtseg.training.objectives import objective_for
from qtseg.validation import EvalResult, evaluate


@dataclass(frozen=True)
class TrainConfig:
    """Everything a training run depends on (saved in the checkpoint).

    ``model_config`` holds further fields of the model's config dataclass
    (e.g. ``{"depth": 2}``); the fields that have their own setting here
    (``num_classes``, ``img_size`` via ``imgsz``, ``width``) are refused in it.
    """

    data: str
    out: str = "runs/train"
    model: str = "qtseg-v2"
    num_classes: int = 2
    width: int | None = None
    model_config: dict[str, Any] = field(default_factory=dict)
    imgsz: int = 512
    epochs: int = 150
    batch: int = 16
    lr: float = 1e-3
    weight_decay: float = 1e-5
    lr_step: int = 50
    lr_gamma: float = 0.1
    lr_floor: float = 1e-5
    amp: bool = False
    seed: int = 0
    split_file: str | None = None
    device: str = "auto"
    workers: int = 4
    limit: int = 0
    max_minutes: float = 0.0
    augment: AugmentConfig = field(default_factory=AugmentConfig)


def _seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def _prepare_one(args: tuple[Sample, PreprocessSpec]) -> tuple[np.ndarray, np.ndarray]:
    sample, spec = args
    image, mask = load_pair(sample, spec.num_classes)
    x = spec.preprocess_one(image)
    if spec.num_classes == 2:
        y = (resize_bilinear(mask.astype(np.float32), spec.input_size) >= 0.5).astype(np.uint8)
    else:  # nearest-neighbour for label maps with several classes
        hi = np.minimum((np.arange(spec.input_size[0]) + 0.5) * mask.shape[0] / spec.input_size[0], mask.shape[0] - 1)
        wi = np.minimum((np.arange(spec.input_size[1]) + 0.5) * mask.shape[1] / spec.input_size[1], mask.shape[1] - 1)
        y = mask[hi.astype(int)][:, wi.astype(int)]
    return x, y


def load_tensors(
    samples: list[Sample], spec: PreprocessSpec, workers: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Decode + resize samples to ``(N, 3, H, W)`` float32 and ``(N, H, W)`` uint8 tensors."""
    jobs = [(s, spec) for s in samples]
    if workers > 1 and len(jobs) > 8:
        with ProcessPoolExecutor(workers) as pool:
            pairs = list(pool.map(_prepare_one, jobs, chunksize=8))
    else:
        pairs = [_prepare_one(j) for j in jobs]
    xs = torch.from_numpy(np.stack([p[0] for p in pairs]))
    ys = torch.from_numpy(np.stack([p[1] for p in pairs]))
    return xs, ys


class FastValidator:
    """Per-epoch validation kept on the device.

    Inputs are preprocessed once; logits are resized to each image's original
    size with ``F.interpolate`` (same bilinear rule as the deployment
    postprocess) and scored on the device. The final numbers are recomputed
    with :func:`qtseg.evaluation.evaluate` on the best checkpoint.
    """

    def __init__(self, samples: list[Sample], spec: PreprocessSpec, device: torch.device, workers: int) -> None:
        self.xs, _ = load_tensors(samples, spec, workers)
        self.xs = self.xs.to(device)
        self.masks = [torch.from_numpy(load_pair(s, spec.num_classes)[1]).to(device) for s in samples]
        self.num_classes = spec.num_classes

    @torch.no_grad()
    def dice(self, model: torch.nn.Module, batch: int = 16) -> float:
        """Mean per-image Dice over the foreground classes."""
        scores = []
        for start in range(0, len(self.xs), batch):
            logits = model(self.xs[start : start + batch]).float()
            for lg, gt in zip(logits, self.masks[start : start + batch]):
                up = torch.nn.functional.interpolate(lg[None], size=gt.shape, mode="bilinear", align_corners=False)
                pred = up[0].argmax(dim=0)
                per_class = []
                for c in range(1, self.num_classes):
                    p, g = pred == c, gt == c
                    total = p.sum() + g.sum()
                    inter = (p & g).sum()
                    per_class.append(torch.where(total > 0, 2 * inter / total.clamp(min=1), 1.0))
                scores.append(torch.stack(per_class).float().mean())
        return float(torch.stack(scores).mean())


_OWN_SETTINGS = {"num_classes": "--num-classes", "img_size": "--imgsz", "width": "--width"}


def model_kwargs(cfg: TrainConfig) -> dict[str, Any]:
    """Config overrides for the model: ``model_config`` + num_classes, img_size, width.

    Raises:
        ValueError: a ``model_config`` key the model's config does not have, or
            one that has its own setting (``--num-classes``, ``--imgsz``, ``--width``).
    """
    from dataclasses import fields as dc_fields

    from qtseg.models import get_entry

    valid = {f.name for f in dc_fields(get_entry(cfg.model).config_cls)}
    unknown = sorted(set(cfg.model_config) - valid)
    if unknown:
        raise ValueError(
            f"model {cfg.model} has no config field {', '.join(map(repr, unknown))}; "
            f"valid: {', '.join(sorted(valid - set(_OWN_SETTINGS)))}"
        )
    own = sorted(set(cfg.model_config) & set(_OWN_SETTINGS))
    if own:
        raise ValueError(f"set {own[0]!r} with {_OWN_SETTINGS[own[0]]}, not in the model config")
    kwargs: dict[str, Any] = {**cfg.model_config, "num_classes": cfg.num_classes}
    if "img_size" in valid:
        kwargs["img_size"] = (cfg.imgsz, cfg.imgsz)
    if cfg.width is not None:
        if "width" not in valid:
            raise ValueError(f"model {cfg.model} has no 'width' setting; drop --width")
        kwargs["width"] = cfg.width
    return kwargs


def _lr_at(cfg: TrainConfig, epoch: int) -> float:
    return max(cfg.lr * cfg.lr_gamma ** (epoch // cfg.lr_step), cfg.lr_floor)


def _resolve_device(name: str) -> torch.device:
    if name == AUTO:
        return torch.device(auto_device())
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError("--device cuda requested but no CUDA GPU is available")
    return torch.device(name)


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class ResumeError(ValueError):
    """A ``last.pt`` that cannot be resumed from (one line)."""


RESUME_KEYS = {"model": dict, "optimizer": dict, "generator": torch.Tensor, "epoch": int,
               "best_dice": float, "history": list}


def save_resume_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                      gen: torch.Generator, epoch: int, best_dice: float, history: list[dict]) -> None:
    """Write ``last.pt`` atomically: tensors and plain data only (loadable with ``weights_only``)."""
    buffer = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                "generator": gen.get_state(), "epoch": int(epoch), "best_dice": float(best_dice),
                "history": history}, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def load_resume_state(path: Path, device: torch.device) -> dict[str, Any]:
    """Read ``last.pt`` without unpickling arbitrary objects (``torch.load(weights_only=True)``).

    Raises:
        ResumeError: one line: not a resume state, a file that would need
            arbitrary Python objects (refused, never executed), or missing keys.
    """
    try:
        state = torch.load(path, map_location=device, weights_only=True)
    except pickle.UnpicklingError as exc:
        if "unsupported global" not in str(exc).lower():  # not a pickle of plain data at all
            raise ResumeError(f"{path}: not a readable resume state (not a torch.save file of "
                              "tensors and plain data)") from None
        raise ResumeError(f"{path}: refused: it needs Python objects other than tensors and plain "
                         "data to load (not a qtseg resume state; it was not executed); delete it "
                         "or train without --resume") from None
    except (RuntimeError, EOFError, OSError, ValueError, TypeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ResumeError(f"{path}: not a readable resume state ({first})") from None
    if not isinstance(state, dict):
        raise ResumeError(f"{path}: not a qtseg resume state (a {type(state).__name__}, not a dict)")
    for key, kind in RESUME_KEYS.items():
        if not isinstance(state.get(key), kind) or isinstance(state.get(key), bool):
            raise ResumeError(f"{path}: not a qtseg resume state ({key!r} missing or not a {kind.__name__})")
    return state


def train(cfg: TrainConfig, *, resume: bool = False, quiet: bool = False) -> dict[str, Any]:
    """Run a training job; returns the summary also written to ``out/summary.json``.

    Progress lines go to stderr unless ``quiet``.
    """
    from tqdm import tqdm

    log: Callable[[str], None] = (lambda message: None) if quiet else _log
    gen = _seed_everything(cfg.seed)
    device = _resolve_device(cfg.device)
    kwargs = model_kwargs(cfg)
    make_config(cfg.model, **kwargs)  # bad values fail before any data is loaded
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    spec = PreprocessSpec(input_size=(cfg.imgsz, cfg.imgsz), num_classes=cfg.num_classes)
    splits = split_samples(discover(cfg.data), split_file=cfg.split_file, seed=cfg.seed)
    if cfg.limit:
        splits = {k: v[: cfg.limit] for k, v in splits.items()}
    if not splits["train"] or not splits["val"]:
        raise ValueError(f"dataset {cfg.data} gives an empty train or val split")
    t0 = time.time()
    xs, ys = load_tensors(splits["train"], spec, cfg.workers)
    xs, ys = xs.to(device), ys.to(device)
    validator = FastValidator(splits["val"], spec, device, cfg.workers)
    log(f"loaded {len(xs)} training + {len(splits['val'])} validation images in "
         f"{time.time() - t0:.1f}s onto {device}")

    model = create(cfg.model, **kwargs)
    model.to(device)
    objective = objective_for(cfg.model)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lr, weight_decay=cfg.weight_decay)
    amp_dtype = torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float16
    use_amp = cfg.amp and device.type == "cuda"
    start_epoch, best_dice, history = 0, -1.0, []
    state_path = out / "last.pt"
    if resume and state_path.is_file():
        state = load_resume_state(state_path, device)
        try:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            gen.set_state(state["generator"])
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ValueError(f"{state_path} does not fit this run (--model/--width/--imgsz/"
                             f"--num-classes differ from the resumed run?): {first}") from None
        start_epoch, best_dice, history = state["epoch"] + 1, state["best_dice"], state["history"]
        log(f"resumed from {state_path} at epoch {start_epoch}")

    steps = max(1, len(xs) // cfg.batch)
    train_start = time.time()
    for epoch in range(start_epoch, cfg.epochs):
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(cfg, epoch)
        model.train()
        order = torch.randperm(len(xs), generator=gen).to(device)
        losses = []
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{cfg.epochs}", leave=False,
                   disable=quiet or not sys.stderr.isatty())
        for step in bar:
            idx = order[step * cfg.batch : (step + 1) * cfg.batch]
            images, masks = augment_batch(xs[idx], ys[idx], cfg.augment, gen)
            with torch.autocast(device.type, dtype=amp_dtype, enabled=use_amp):
                loss = objective(model, images, masks)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.detach())
        mean_loss = float(torch.stack(losses).mean())
        model.eval()
        val_dice = validator.dice(model)
        improved = val_dice > best_dice
        if improved:
            best_dice = val_dice
            save_checkpoint(out / "best", model, spec, training={"config": _jsonable(cfg), "epoch": epoch + 1},
                            metrics={"val_dice": val_dice})
        history.append({"epoch": epoch + 1, "loss": round(mean_loss, 5), "lr": _lr_at(cfg, epoch),
                        "val_dice": round(val_dice, 5)})
        log(f"epoch {epoch + 1}/{cfg.epochs} loss {mean_loss:.4f} lr {_lr_at(cfg, epoch):.0e} "
             f"val dice {val_dice:.4f}{' *' if improved else ''} [{time.time() - train_start:.0f}s]")
        if cfg.max_minutes and time.time() - train_start > cfg.max_minutes * 60:
            log(f"stopping after epoch {epoch + 1}: --max-minutes {cfg.max_minutes} reached")
            save_resume_state(state_path, model, optimizer, gen, epoch, best_dice, history)
            break
        save_resume_state(state_path, model, optimizer, gen, epoch, best_dice, history)

    train_seconds = time.time() - train_start
    return finalize(cfg, out, splits, device, train_seconds, history, log=log)


def finalize(cfg: TrainConfig, out: Path, splits: dict[str, list[Sample]], device: torch.device,
             train_seconds: float, history: list[dict],
             log: Callable[[str], None] = _log) -> dict[str, Any]:
    """Evaluate the best checkpoint on val and test; store the results in it."""
    from qtseg.checkpoint import load_checkpoint

    model, spec, info = load_checkpoint(out / "best", device=device)
    results: dict[str, EvalResult] = {}
    for split in ("val", "test"):
        if splits.get(split):
            results[split] = evaluate(torch_predictor(model, device), spec, splits[split], batch_size=16)
    summary = {
        "command": " ".join(sys.argv),
        "config": _jsonable(cfg),
        "best_epoch": info.training.get("epoch"),
        "train_seconds": round(train_seconds, 1),
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "metrics": {k: v.mean.to_dict() for k, v in results.items()},
        "history": history,
    }
    save_checkpoint(out / "best", model, spec, training={k: v for k, v in summary.items() if k != "metrics"},
                    metrics=summary["metrics"])
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    for split, res in results.items():
        m = res.mean
        log(f"{split}: dice {m.dice:.4f} iou {m.iou:.4f} mae {m.mae:.4f} acc {m.accuracy:.4f} (n={len(res.names)})")
    return summary


def _jsonable(cfg: TrainConfig) -> dict[str, Any]:
    data = asdict(cfg)
    return json.loads(json.dumps(data, default=lambda o: list(o) if isinstance(o, tuple) else str(o)))

