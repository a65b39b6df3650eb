"""The shared TF32 switches: concurrent callers always run with the values they asked for."""

from __future__ import annotations

import threading
import time

import pytest
import torch

from qtseg.backends.tf32 import Tf32Switches


@pytest.fixture
def original_switches():
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = False, True
    yield False, True
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = saved


def _current() -> tuple[bool, bool]:
    return torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32


def test_conflicting_callers_each_see_their_values_and_the_originals_come_back(original_switches):
    switches = Tf32Switches()
    wrong: list[str] = []
    barrier = threading.Barrier(8)

    def call(matmul: bool, cudnn: bool | None, k: int) -> None:
        barrier.wait()
        for _ in range(30):
            with switches.hold(torch, matmul=matmul, cudnn=cudnn):
                expected = (matmul, original_switches[1] if cudnn is None else cudnn)
                for _ in range(3):
                    if _current() != expected:
                        wrong.append(f"caller {k}: {_current()} != {expected}")
                    time.sleep(0.0002)

    threads = [
        threading.Thread(target=call, args=(True, None, k) if k % 2 else (False, False, k))
        for k in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not wrong, wrong[:3]
    assert _current() == original_switches


def test_same_values_nest_and_other_values_in_the_same_thread_are_an_error(original_switches):
    switches = Tf32Switches()
    with switches.hold(torch, matmul=True):
        with switches.hold(torch, matmul=True):
            assert _current() == (True, original_switches[1])
        with pytest.raises(RuntimeError, match="already held"):
            with switches.hold(torch, matmul=False, cudnn=False):
                pass
        assert _current() == (True, original_switches[1])
    assert _current() == original_switches
