"""The user's options of one export run (:class:`ExportOptions`, :class:`Int8Options`).

Plus the ``qtseg-export`` INT8 flags that set them. Imports no runtime and no
torch (``qtseg-export --help`` reads it).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any

from qtseg.calibration.methods import DEFAULT_METHOD

NOTES_KEY = "int8"


class Int8SetupError(ValueError):
    """INT8 settings that cannot be used (no calibration set, overlapping data, ...)."""


@dataclass(frozen=True)
class Int8Options:
    """INT8 settings of one export run.

    Attributes:
        calib: a calibration-set folder (``qtseg-calib build``) or a dataset
            folder (a set is then built from its ``train`` split and saved
            under ``<out>/calibration/<set id>/``).
        calib_size: images when building from a dataset folder.
        calib_seed: selection seed when building.
        calib_method: ``minmax``, ``entropy`` or ``percentile[:P]``.
        max_dice_drop: accuracy budget, percentage points of mean Dice vs FP32.
        guard_data: dataset folder of the held-out images (default: the
            calibration set's source dataset).
        guard_split: split of ``guard_data`` used by the guard (default ``val``).
        guard_limit: use only the first N held-out images (0 = all).
        search: run the sensitivity search when the budget is exceeded.
        max_kept: most layer groups the search may keep in float.
    """

    calib: str | None = None
    calib_size: int = 128
    calib_seed: int = 0
    calib_method: str = DEFAULT_METHOD
    max_dice_drop: float = 0.5
    guard_data: str | None = None
    guard_split: str = "val"
    guard_limit: int = 0
    search: bool = True
    max_kept: int = 8

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        return asdict(self)


def add_int8_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the INT8 flags to ``qtseg-export``'s parser (no runtime imported)."""
    g = parser.add_argument_group("INT8 targets (onnx-int8, openvino-int8, trt-int8, trtrtx-int8)")
    g.add_argument("--calib", default=None, metavar="DIR",
                   help="calibration-set folder (qtseg-calib build) or dataset folder (its train split is used)")
    g.add_argument("--calib-size", type=int, default=128, help="images when building a set from a dataset (default 128)")
    g.add_argument("--calib-seed", type=int, default=0, help="selection seed when building a set (default 0)")
    g.add_argument("--calib-method", default=DEFAULT_METHOD,
                   help=f"minmax | entropy | percentile[:P] (default {DEFAULT_METHOD})")
    g.add_argument("--max-dice-drop", type=float, default=0.5, metavar="PP",
                   help="accuracy budget in Dice percentage points vs FP32 (default 0.5)")
    g.add_argument("--guard-data", default=None, metavar="DIR",
                   help="held-out dataset folder (default: the calibration set's source)")
    g.add_argument("--guard-split", default="val", help="held-out split (default val)")
    g.add_argument("--guard-limit", type=int, default=0, metavar="N", help="first N held-out images only (0 = all)")
    g.add_argument("--no-int8-search", action="store_true",
                   help="fail instead of searching for layers to keep in float")


def int8_options_from_args(args: argparse.Namespace) -> Int8Options:
    """:class:`Int8Options` from parsed flags; raises ``ValueError`` on bad values."""
    from qtseg.calibration.methods import CalibrationMethod

    CalibrationMethod.parse(args.calib_method)
    if args.calib_size < 1:
        raise ValueError(f"--calib-size must be >= 1, got {args.calib_size}")
    if args.max_dice_drop < 0:
        raise ValueError(f"--max-dice-drop must be >= 0, got {args.max_dice_drop}")
    if args.guard_limit < 0:
        raise ValueError(f"--guard-limit must be >= 0, got {args.guard_limit}")
    return Int8Options(
        calib=args.calib,
        calib_size=args.calib_size,
        calib_seed=args.calib_seed,
        calib_method=args.calib_method,
        max_dice_drop=args.max_dice_drop,
        guard_data=args.guard_data,
        guard_split=args.guard_split,
        guard_limit=args.guard_limit,
        search=not args.no_int8_search,
    )


def given_int8_flags(args: argparse.Namespace) -> list[str]:
    """The INT8 flags (other than ``--calib``) set to a non-default value, as typed; raises ``ValueError`` on bad values."""
    options, default = int8_options_from_args(args), Int8Options()
    flag = {"search": "--no-int8-search"}
    return [flag.get(f.name, "--" + f.name.replace("_", "-")) for f in fields(Int8Options)
            if f.name != "calib" and getattr(options, f.name) != getattr(default, f.name)]


@dataclass(frozen=True)
class ExportOptions:
    """User options of one export run (defaults = CLI defaults).

    Attributes:
        batch: static batch size.
        dynamic_batch: maximum batch of a dynamic batch dimension (0 = static).
        dynamic_hw: free height/width (multiples of 32).
        opset: ONNX opset (>= 17).
        simplify: run onnxslim.
        io_fp16: float16 graph I/O for ``onnx-fp16``.
        verify: run the parity gate.
        samples: folder of sample images (default: the bundled samples).
        num_samples: images used by the gate.
        workspace_mib: TensorRT workspace limit.
        compute_capability: TensorRT-RTX target architectures.
        timing_cache: TensorRT timing-cache file.
        int8: INT8 settings (calibration set, method, accuracy budget) for
            the INT8 targets; ``None`` when no calibration set was given.
    """

    batch: int = 1
    dynamic_batch: int = 0
    dynamic_hw: bool = False
    opset: int = 17
    simplify: bool = True
    io_fp16: bool = False
    verify: bool = True
    samples: str | None = None
    num_samples: int = 8
    workspace_mib: int = 1024
    compute_capability: tuple[str, ...] = ()
    timing_cache: str | None = None
    int8: Int8Options | None = None

    def non_default(self) -> set[str]:
        """Names of options set to something other than the default."""
        default = ExportOptions()
        names = {f.name for f in dataclasses.fields(self) if getattr(self, f.name) != getattr(default, f.name)}
        if "workspace_mib" in names:
            names = (names - {"workspace_mib"}) | {"workspace"}
        return names - {"num_samples", "int8"}


def parse_compute_capabilities(values: Sequence[str]) -> tuple[str, ...]:
    """Normalise ``["8.6", "sm_89", "120", "current"]`` to ``("86", "89", "120", "current")``."""
    out = []
    for raw in values:
        for item in str(raw).split(","):
            item = item.strip().lower().removeprefix("sm_").removeprefix("sm").replace(".", "")
            if not item:
                continue
            if item != "current" and not item.isdigit():
                raise ValueError(f"bad compute capability {raw!r} (e.g. 86, 8.6, sm_89, current)")
            out.append(item)
    if "current" in out and len(out) > 1:
        raise ValueError("compute capability 'current' cannot be combined with others")
    return tuple(out)
