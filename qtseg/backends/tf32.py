"""PyTorch's process-wide TF32 switches, shared safely by concurrent backend calls.

``torch.backends.cuda.matmul.allow_tf32`` and ``torch.backends.cudnn.allow_tf32``
are global to the process, and cuBLAS/cuDNN read them when a kernel is launched
(or captured into a CUDA graph). A plain save/set/restore per call is wrong as
soon as two threads do it: one thread's restore lands in the middle of the
other's call, or the last restore writes back a value that was itself
temporary, leaving TF32 switched for the rest of the process. Either way a
call silently runs at a precision nobody asked for.

:data:`TF32_SWITCHES` holds the switches for every caller. A call states the
values it needs (:meth:`Tf32Switches.hold`); calls that need the same values
run together, a call that needs other values waits until those have all
finished, and the values found before the first call are restored when the
last one ends.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

# state: (matmul.allow_tf32, cudnn.allow_tf32); None leaves a switch as found
State = tuple[bool | None, bool | None]


class Tf32Switches:
    """Reference-counted owner of the two TF32 switches (see the module docstring)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._state: State | None = None
        self._users = 0
        self._saved: tuple[bool, bool] = (False, False)
        self._local = threading.local()

    @contextmanager
    def hold(
        self, torch: Any, *, matmul: bool | None = None, cudnn: bool | None = None
    ) -> Iterator[None]:
        """Run the block with the given switch values (``None``: as found).

        Blocks while calls with other values run. Raises ``RuntimeError`` when
        the same thread already holds other values (waiting would never end).
        """
        state: State = (matmul, cudnn)
        mine = getattr(self._local, "states", [])
        if mine and mine[-1] != state:
            raise RuntimeError(
                f"TF32 switches already held as {mine[-1]} by this thread, asked {state}"
            )
        with self._cond:
            while self._users and self._state != state:
                self._cond.wait()
            if self._users == 0:
                self._saved = (
                    torch.backends.cuda.matmul.allow_tf32,
                    torch.backends.cudnn.allow_tf32,
                )
                if matmul is not None:
                    torch.backends.cuda.matmul.allow_tf32 = matmul
                if cudnn is not None:
                    torch.backends.cudnn.allow_tf32 = cudnn
                self._state = state
            self._users += 1
        self._local.states = [*mine, state]
        try:
            yield
        finally:
            self._local.states = mine
            with self._cond:
                self._users -= 1
                if self._users == 0:
                    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = (
                        self._saved
                    )
                    self._state = None
                    self._cond.notify_all()


TF32_SWITCHES = Tf32Switches()
