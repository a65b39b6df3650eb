"""Helpers shared by the command-line tools."""

from __future__ import annotations

import sys


def fail(message: str, code: int = 2) -> int:
    """Print one error line to stderr and return ``code``."""
    first = message.strip().splitlines()[0] if message.strip() else "failed"
    print(f"error: {first}", file=sys.stderr)
    return code
