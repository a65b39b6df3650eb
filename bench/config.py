"""Options of one benchmark run (built by the CLI, read by the runner)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

from qtseg.bench.torch_variants import VARIANTS

DEVICES = ("cpu", "cuda")


class ConfigError(ValueError):
    """An option value that cannot work."""


@dataclass(frozen=True)
class BenchConfig:
    """What to run and how.

    Attributes:
        paths: artifact directories, checkpoint directories or folders of them.
        data: a folder with ``images/`` (+ ``masks/``, optional ``splits.json``)
            or an image folder with ``../masks``; ``None`` = the bundled samples.
            Accuracy is measured on all its images (``split``); parity on the
            first ``num_images`` of its images folder.
        split: split of ``data``'s split file (default: ``test`` when there is one).
        num_images: images used for parity, and for accuracy without ``data``
            (8 = the export gate's default).
        device: ``"cpu"`` or ``"cuda"`` (``"cuda:N"`` accepted).
        batches: batch sizes timed.
        threads: CPU threads of every runtime (pinned; see docs/bench.md).
        warmup: untimed calls before each timing loop.
        iters: timed calls per batch size.
        e2e_iters: timed end-to-end calls (0 = skip end-to-end latency).
        out: report directory.
        layers: print and record the per-layer MAC/parameter table.
        torch_only: only the PyTorch rows (no artifacts).
        variants: PyTorch variants to run (names of
            :data:`~qtseg.bench.torch_variants.VARIANTS`); empty = every one
            the device runs.
        cuda_graph: on CUDA, also time each artifact whose runtime replays CUDA
            graphs (``Runtime.cuda_graph``: AOTInductor) with one graph per batch size.
        checkpoint: reference checkpoint (overrides the manifests' path).
        random_weights: with ``torch_only`` and no checkpoint, build ``model`` at
            ``imgsz`` with seed-0 weights.
        model: model name for ``random_weights``.
        imgsz: square input size for ``random_weights``.
        isolate: one worker process per row (clean peak RSS, crash isolation).
        row_timeout_s: a row that runs longer becomes an ``error`` row.
        plots: write PNG plots (needs matplotlib).
        quiet: no progress lines.
    """

    paths: tuple[str, ...] = ()
    data: str | None = None
    split: str | None = None
    num_images: int = 8
    device: str = "cpu"
    batches: tuple[int, ...] = (1,)
    threads: int = 0
    warmup: int = 5
    iters: int = 20
    e2e_iters: int = 20
    out: str = "runs/bench"
    layers: bool = False
    torch_only: bool = False
    variants: tuple[str, ...] = ()
    cuda_graph: bool = False
    checkpoint: str | None = None
    random_weights: bool = False
    model: str = "qtseg-v2"
    imgsz: int = 512
    isolate: bool = True
    row_timeout_s: float = 1800.0
    plots: bool = True
    quiet: bool = False

    def __post_init__(self) -> None:
        if self.device.split(":")[0] not in DEVICES:
            raise ConfigError(f"--device must be cpu or cuda, got {self.device!r}")
        if not self.batches or any(b < 1 for b in self.batches):
            raise ConfigError(f"--batch needs positive sizes, got {list(self.batches)}")
        if self.iters < 1 or self.warmup < 0 or self.e2e_iters < 0:
            raise ConfigError("--iters must be >= 1, --warmup and --e2e-iters >= 0")
        if self.threads < 0:
            raise ConfigError(f"--threads must be >= 0, got {self.threads}")
        if self.num_images < 1:
            raise ConfigError(f"--num-images must be >= 1, got {self.num_images}")
        if self.imgsz <= 0 or self.imgsz % 32:
            raise ConfigError(f"--imgsz must be a positive multiple of 32, got {self.imgsz}")
        if self.row_timeout_s <= 0:
            raise ConfigError("--row-timeout must be positive")
        kind = self.device.split(":")[0]
        for name in self.variants:
            if name not in VARIANTS:
                raise ConfigError(f"unknown --variants entry {name!r}; known: {', '.join(VARIANTS)}")
            if kind not in VARIANTS[name].devices:
                raise ConfigError(
                    f"torch variant {name} runs on {', '.join(VARIANTS[name].devices)}, not {kind}"
                )
        if self.cuda_graph and kind != "cuda":
            raise ConfigError("--cuda-graph needs --device cuda")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (tuples as lists)."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}

    @classmethod
    def field_names(cls) -> list[str]:
        """Names of the options."""
        return [f.name for f in fields(cls)]
