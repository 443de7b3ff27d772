"""Ctrl-C (and SIGTERM) at a safe point: a loop that can save its progress asks for them to be deferred.

Inside :func:`deferred_interrupt`, the first Ctrl-C only sets ``requested``; the loop checks it
between steps, saves, and raises :class:`KeyboardInterrupt` itself. A second Ctrl-C stops at once.
Outside such a loop (and off the main thread) Ctrl-C behaves as usual.

SIGTERM (``kill``, ``timeout``, a scheduler's time limit, a container stop) would otherwise end the
process at once, skipping every cleanup: a sandboxed submission kept running without its
supervisor, training lost the steps since its last checkpoint. :func:`route_sigterm` (the CLI
calls it first) makes SIGTERM take Ctrl-C's path instead; :data:`state` then says the stop was a
SIGTERM, so the CLI exits with 143 rather than 130.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


@dataclass
class InterruptFlag:
    requested: bool = False


@dataclass
class _State:
    terminated: bool = False  # a SIGTERM arrived (the CLI's exit code is 143, not 130)
    deferring: list[InterruptFlag] = field(default_factory=list)  # the open deferred_interrupt blocks


state = _State()


@contextmanager
def deferred_interrupt(enabled: bool = True) -> Iterator[InterruptFlag]:
    flag = InterruptFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = signal.getsignal(signal.SIGINT)
    takes_sigint = previous is signal.default_int_handler

    def handler(signum, frame) -> None:  # noqa: ANN001 - signal handler signature
        if flag.requested:
            raise KeyboardInterrupt
        flag.requested = True

    if takes_sigint:
        signal.signal(signal.SIGINT, handler)
    state.deferring.append(flag)  # a routed SIGTERM defers to this block too (see _on_sigterm)
    try:
        yield flag
    finally:
        state.deferring.remove(flag)
        if takes_sigint:
            signal.signal(signal.SIGINT, previous)


def _on_sigterm(signum, frame) -> None:  # noqa: ANN001 - signal handler signature
    state.terminated = True
    if state.deferring and not state.deferring[-1].requested:
        state.deferring[-1].requested = True  # stop at the loop's next safe point, as Ctrl-C does
        return
    raise KeyboardInterrupt


def route_sigterm(*, force: bool = False) -> bool:
    """Make SIGTERM stop this process the way Ctrl-C does (see the module docstring); returns
    whether it did. Only on the main thread, and only over the default disposition unless
    ``force`` (a caller that knows a library replaced vwbench's handler, as ``ray.init`` does); an
    inherited "ignore" is kept."""
    if threading.current_thread() is not threading.main_thread():
        return False
    current = signal.getsignal(signal.SIGTERM)
    if current is signal.SIG_IGN or (current is not signal.SIG_DFL and not force):
        return current is _on_sigterm
    signal.signal(signal.SIGTERM, _on_sigterm)
    return True


def sigterm_routed() -> bool:
    """Whether SIGTERM takes Ctrl-C's path in this process now (:func:`route_sigterm`)."""
    return signal.getsignal(signal.SIGTERM) is _on_sigterm
