"""Ctrl-C at a safe point: a loop that can save its progress asks for SIGINT to be deferred.

Inside :func:`deferred_interrupt`, the first Ctrl-C only sets ``requested``; the loop checks it
between steps, saves, and raises :class:`KeyboardInterrupt` itself. A second Ctrl-C stops at once.
Outside such a loop (and off the main thread) Ctrl-C behaves as usual.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass


@dataclass
class InterruptFlag:
    requested: bool = False


@contextmanager
def deferred_interrupt(enabled: bool = True) -> Iterator[InterruptFlag]:
    flag = InterruptFlag()
    previous = signal.getsignal(signal.SIGINT)
    if not enabled or threading.current_thread() is not threading.main_thread() or previous is not signal.default_int_handler:
        yield flag
        return

    def handler(signum, frame) -> None:  # noqa: ANN001 - signal handler signature
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    signal.signal(signal.SIGINT, handler)
    try:
        yield flag
    finally:
        signal.signal(signal.SIGINT, previous)
