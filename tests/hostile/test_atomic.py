"""Replacing an artifact folder can never lose it: kills at every step, stale staging, concurrent writers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from qtseg.atomic import staging_dir

# A child that replaces FINAL with a folder of two files tagged TAG, optionally dying at one step.
CHILD = textwrap.dedent('''
    import os, sys, time
    from pathlib import Path
    import qtseg.atomic as atomic

    final, tag, mode = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
    signal_dir = Path(sys.argv[4]) if len(sys.argv) > 4 else None
    if mode == "die-after-swap":
        place = atomic._place
        def place_then_die(staging, target):
            place(staging, target)
            os._exit(9)
        atomic._place = place_then_die
    if mode == "die-between-renames":
        atomic._exchange = lambda a, b: False  # a system without RENAME_EXCHANGE
        replace = os.replace
        def replace_then_die(src, dst):
            replace(src, dst)
            if Path(src) == final:
                os._exit(9)
        os.replace = replace_then_die
    rounds = int(mode.split(":")[1]) if mode.startswith("loop:") else 1
    for _ in range(rounds):
        with atomic.staging_dir(final) as staging:
            (staging / "a.txt").write_text(tag)
            (staging / "b.txt").write_text(tag)
            if mode in ("hang", "wait-for-go"):
                (signal_dir / "ready").write_text(str(staging))
                while mode == "hang" or not (signal_dir / "go").exists():
                    time.sleep(0.02)
''')


def child(final: Path, tag: str, mode: str, signal_dir: Path | None = None) -> subprocess.Popen:
    args = [sys.executable, "-c", CHILD, str(final), tag, mode] + ([str(signal_dir)] if signal_dir else [])
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_for(path: Path, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def tag_of(folder: Path) -> str:
    """The tag of a complete folder (both files agree); fails on a missing or mixed folder."""
    assert folder.is_dir(), f"{folder} is missing"
    a, b = (folder / "a.txt").read_text(), (folder / "b.txt").read_text()
    assert a == b, f"{folder} mixes two versions"
    assert sorted(p.name for p in folder.iterdir()) == ["a.txt", "b.txt"]
    return a


def hidden(parent: Path) -> list[str]:
    return sorted(p.name for p in parent.iterdir() if p.name.startswith("."))


def make(final: Path, tag: str) -> None:
    with staging_dir(final) as staging:
        (staging / "a.txt").write_text(tag)
        (staging / "b.txt").write_text(tag)


def test_replace_and_failure_inside(tmp_path):
    final = tmp_path / "art"
    make(final, "old")
    make(final, "new")
    assert tag_of(final) == "new" and hidden(tmp_path) == []
    with pytest.raises(RuntimeError, match="build failed"), staging_dir(final) as staging:
        (staging / "a.txt").write_text("half")
        raise RuntimeError("build failed")
    assert tag_of(final) == "new" and hidden(tmp_path) == []


def test_killed_while_building_keeps_the_old_folder_and_the_leftover_is_cleaned(tmp_path):
    final = tmp_path / "art"
    make(final, "old")
    proc = child(final, "new", "hang", tmp_path)
    wait_for(tmp_path / "ready")
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert tag_of(final) == "old"
    assert len(hidden(tmp_path)) == 1  # the dead writer's staging folder
    make(final, "next")
    assert tag_of(final) == "next" and hidden(tmp_path) == []


def test_killed_right_after_the_swap_has_the_new_folder_in_place(tmp_path):
    final = tmp_path / "art"
    make(final, "old")
    proc = child(final, "new", "die-after-swap")
    assert proc.wait() == 9
    assert tag_of(final) == "new"
    assert len(hidden(tmp_path)) == 1  # the old folder under the staging name, not yet removed
    make(final, "next")
    assert tag_of(final) == "next" and hidden(tmp_path) == []


def test_fallback_without_exchange_is_repaired_by_the_next_write(tmp_path):
    """Without RENAME_EXCHANGE a kill between the two renames leaves the old folder as .NAME.old;
    the next writer puts it back before anything else (the documented limit of the fallback)."""
    final = tmp_path / "art"
    make(final, "old")
    proc = child(final, "new", "die-between-renames")
    assert proc.wait() == 9
    assert not final.exists() and (tmp_path / ".art.old").is_dir()
    with pytest.raises(RuntimeError), staging_dir(final):
        assert tag_of(final) == "old"  # restored before the body runs
        raise RuntimeError("stop")
    assert tag_of(final) == "old" and hidden(tmp_path) == []


def test_a_live_writers_staging_folder_is_left_alone(tmp_path):
    final = tmp_path / "art"
    make(final, "old")
    proc = child(final, "slow", "wait-for-go", tmp_path)
    wait_for(tmp_path / "ready")
    live = Path((tmp_path / "ready").read_text())
    make(final, "fast")  # cleans stale folders: must not take the live one
    assert live.is_dir() and tag_of(final) == "fast"
    (tmp_path / "go").write_text("")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert tag_of(final) == "slow" and hidden(tmp_path) == []


def test_concurrent_writers_all_succeed(tmp_path):
    final = tmp_path / "art"
    procs = [child(final, f"w{i}", "loop:100") for i in range(4)]
    results = [(p.wait(timeout=120), p.stderr.read()) for p in procs]
    assert all(rc == 0 for rc, _ in results), [err for _, err in results]
    assert tag_of(final) in {"w0", "w1", "w2", "w3"} and hidden(tmp_path) == []


@pytest.mark.slow
def test_two_real_exports_into_the_same_out(tiny_checkpoint, tmp_path):
    """Two ``qtseg-export --target onnx`` processes at once, same --out: both succeed."""
    from qtseg.manifest import open_artifact

    out = tmp_path / "exports"
    args = [sys.executable, "-m", "qtseg.export.cli", "--target", "onnx", "--checkpoint",
            str(tiny_checkpoint), "--out", str(out), "--num-samples", "1", "--quiet"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    procs = [subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
             for _ in range(2)]
    results = [p.communicate(timeout=600) for p in procs]
    for proc, (_, err) in zip(procs, results):
        assert proc.returncode == 0, err
    open_artifact(out / "qtseg-v2_onnx")
    assert hidden(out) == []
