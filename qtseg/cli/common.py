"""What the command-line tools share: the error line, and the options every command has.

Every qtseg command takes ``--version`` and ``--quiet``; the commands that run
a model take ``--device`` with the same default, ``auto``: for a checkpoint
CUDA when PyTorch sees a GPU, else the CPU; for an exported artifact the
device it was built for (CPU for ONNX Runtime and OpenVINO artifacts, CUDA
for TensorRT engines). Outputs go to ``runs/<command>`` by default
(``exports/`` for ``qtseg-export``, whose folders are artifacts to ship).
"""

from __future__ import annotations

import argparse
import sys

import qtseg

# Exit codes of every qtseg command: done, a result failed (a target, an image, a floor), bad input.
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

DEVICE_HELP = (
    "auto (default: CUDA for a checkpoint when a GPU is present, else CPU; an artifact runs "
    "where it was built for), cpu or cuda[:N]"
)


class DefaultsHelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Help that shows every option's default, except ``None`` and off switches."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        default = action.default
        hidden = default is None or default is False or default == argparse.SUPPRESS
        if hidden or "%(default)" in (action.help or ""):
            return action.help
        return super()._get_help_string(action)


def fail(message: str, code: int = EXIT_USAGE) -> int:
    """Print one error line to stderr and return ``code``."""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"error: {first}", file=sys.stderr)
    return code


def add_common_arguments(
    parser: argparse.ArgumentParser,
    *,
    device: bool = False,
    quiet_help: str = "no progress output",
    device_help: str = DEVICE_HELP,
) -> None:
    """Add ``--version``, ``--quiet`` and (``device=True``) ``--device`` (default ``auto``)."""
    parser.add_argument(
        "--version", action="version", version=f"%(prog)s {qtseg.__version__}"
    )
    parser.add_argument("--quiet", action="store_true", help=quiet_help)
    if device:
        parser.add_argument("--device", default="auto", help=device_help)


def add_max_pixels(parser: argparse.ArgumentParser) -> None:
    """``--max-pixels N``: the decompression-bomb limit of the image reader."""
    parser.add_argument(
        "--max-pixels", type=positive_int, default=None, metavar="N",
        help="refuse images of more than N pixels as unreadable (default: qtseg.imageio's limit, "
        "100,000,000, or $QTSEG_MAX_PIXELS)",
    )


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = non_negative_int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value
