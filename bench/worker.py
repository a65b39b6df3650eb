"""Run one row in its own process: ``python -m qtseg.bench.worker SPEC.json RESULT.json``.

A fresh process per row makes ``peak_rss_mb`` (the process high-water mark)
belong to that row alone, and keeps a runtime that crashes from taking the
whole benchmark down (the parent turns a dead worker into an ``error`` row).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from qtseg.atomic import atomic_write_text


def main(argv: Sequence[str] | None = None) -> int:
    """Read a :class:`~qtseg.bench.rows.RowSpec`, run it, write the row JSON; returns 0."""
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 2:
        print("usage: python -m qtseg.bench.worker SPEC.json RESULT.json", file=sys.stderr)
        return 2
    from qtseg.bench.rows import RowSpec, run_row

    spec = RowSpec.from_dict(json.loads(Path(args[0]).read_text()))
    row = run_row(spec)
    atomic_write_text(Path(args[1]), json.dumps(row, indent=1, allow_nan=True) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
