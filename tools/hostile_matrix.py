"""Run the hostile cases of issue #12 (Python side) against a checkout and classify each outcome.

Outcome classes: ``ok`` (did the right thing), ``clear error`` (a documented
qtseg error / an ``error:`` line, one line), ``traceback`` (a raw exception
from a dependency or an uncaught one), ``silent wrong`` (returned a wrong
result), ``accepted`` (a malformed input taken without a word, result not
shown to be wrong), ``data loss`` (an artifact
folder missing or mixed after a kill), ``code executed`` (an untrusted
pickle ran), ``leftover`` (a dead writer's staging folder is never removed),
``hang``/``crash`` (no result).

Usage::

    python tools/hostile_matrix.py run /work/wt/baseline --json before.json
    python tools/hostile_matrix.py run .               --json after.json
    python tools/hostile_matrix.py table before.json after.json     # markdown: case, before, after

Each case runs in a fresh process of the checkout's own virtual environment
(``CHECKOUT/.venv/bin/python`` unless ``--python``), so the code measured is
the checkout's. The cases are in ``tools/hostile_cases.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_cases import CASES, PRELUDE, SETUP  # tools/ is not a package

MARK = "@@RESULT "


def run_script(python: str, checkout: Path, code: str, work: Path, scratch: Path, timeout: float) -> dict:
    """Run one case script; its ``@@RESULT`` line, or ``hang``/``crash``."""
    shutil.rmtree(scratch, ignore_errors=True)  # a fresh scratch folder per run
    scratch.mkdir(parents=True)
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    start = time.perf_counter()
    try:
        proc = subprocess.run([python, "-c", PRELUDE + code, str(work), str(scratch)], cwd=checkout,
                              capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired:
        return {"outcome": "hang", "note": f"no result after {timeout:.0f} s", "seconds": timeout}
    seconds = round(time.perf_counter() - start, 1)
    for line in proc.stdout.splitlines():
        if line.startswith(MARK):
            return {**json.loads(line[len(MARK):]), "seconds": seconds}
    tail = (proc.stderr.strip().splitlines() or ["(no output)"])[-1]
    return {"outcome": "crash", "note": f"exit {proc.returncode}: {tail}", "seconds": seconds}


def run(args: argparse.Namespace) -> int:
    checkout = Path(args.checkout).resolve()
    python = args.python or str(checkout / ".venv" / "bin" / "python")
    work = Path(args.work or tempfile.mkdtemp(prefix="hostile-"))
    fixtures = work / "fixtures"
    commit = subprocess.run(["git", "-C", str(checkout), "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True, check=False).stdout.strip()
    if not (fixtures / "ckpt").is_dir():
        fixtures.mkdir(parents=True, exist_ok=True)
        setup = run_script(python, checkout, SETUP, fixtures, work / "setup", 900)
        if setup["outcome"] != "ok":
            print(f"error: fixtures could not be made: {setup['note']}", file=sys.stderr)
            return 2
    results = []
    for case in CASES:
        if args.only and args.only not in case.id:
            continue
        if args.skip_slow and case.slow:
            continue
        result = run_script(python, checkout, case.code, fixtures, work / case.id, args.timeout)
        row = {"id": case.id, "area": case.area, "what": case.what, **result}
        results.append(row)
        print(f"{case.id:28s} {row['outcome']:13s} {row['seconds']:6.1f}s  {row['note']}", flush=True)
    counts: dict[str, int] = {}
    for row in results:
        counts[row["outcome"]] = counts.get(row["outcome"], 0) + 1
    print("totals: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    if args.json:
        Path(args.json).write_text(json.dumps({"checkout": str(checkout), "commit": commit,
                                               "results": results}, indent=1) + "\n")
    return 0


def table(args: argparse.Namespace) -> int:
    before = {r["id"]: r for r in json.loads(Path(args.before).read_text())["results"]}
    after_doc = json.loads(Path(args.after).read_text())
    print("| case | what | before | after |")
    print("| --- | --- | --- | --- |")
    for row in after_doc["results"]:
        old = before.get(row["id"], {"outcome": "-"})
        print(f"| `{row['id']}` | {row['what']} | {old['outcome']} | {row['outcome']} |")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="run the cases against CHECKOUT")
    p.add_argument("checkout")
    p.add_argument("--python", default=None, help="interpreter (default CHECKOUT/.venv/bin/python)")
    p.add_argument("--work", default=None, help="scratch folder (fixtures are reused when present)")
    p.add_argument("--only", default=None, help="run the cases whose id contains this")
    p.add_argument("--skip-slow", action="store_true", help="skip cases that export or benchmark")
    p.add_argument("--timeout", type=float, default=600.0, help="seconds per case")
    p.add_argument("--json", default=None, help="write the results here")
    t = sub.add_parser("table", help="markdown table of two result files")
    t.add_argument("before")
    t.add_argument("after")
    args = parser.parse_args(argv)
    return run(args) if args.command == "run" else table(args)


if __name__ == "__main__":
    sys.exit(main())
