"""Stopping a run with Ctrl-C or SIGTERM (``docker stop``, Kubernetes): keep the checkpoint,
exit within seconds, continue later with ``--resume``.

Both signals raise ``Stopped`` (a ``KeyboardInterrupt``), so every ``finally`` runs: a staging
export is removed, nothing half-written is published. While the model trains, the stop waits
for the end of the current step (milliseconds) or of the epoch's checkpoint, so a checkpoint
is never cut in half; a second signal stops at once.
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Stopped(KeyboardInterrupt):
    """The run was asked to stop by ``signum``."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum

    @property
    def exit_code(self) -> int:
        """128 + the signal's number, as a shell reports a process the signal killed
        (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


class StopSignals:
    """The process's handler of SIGINT and SIGTERM (one per process, like the signals)."""

    def __init__(self) -> None:
        self._deferring = False
        self._pending: int | None = None

    def install(self) -> None:
        for signum in SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._deferring and self._pending is None:
            self._pending = signum
            return
        raise Stopped(signum)

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Inside the block a signal takes effect at the next ``check()``."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        self.check()

    def check(self) -> None:
        """Raise ``Stopped`` if a signal arrived since the last check."""
        if self._pending is not None:
            signum, self._pending = self._pending, None
            raise Stopped(signum)


stop_signals = StopSignals()
