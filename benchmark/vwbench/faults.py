"""Named fault points, so tests can crash a run at an exact moment.

Code that writes state calls :func:`point` with a phase name (``"train-step"``,
``"write:words:synced"``, ...). Normally that does nothing. When ``$VWBENCH_FAULT`` is set to
``PHASE@N`` (or ``PHASE@N=ACTION``, several separated by commas), the ``N``-th time this process
passes ``PHASE`` the action happens:

* ``kill`` (default): ``SIGKILL`` to this process, a crash that runs no cleanup at all;
* ``interrupt``: ``SIGINT`` to this process, as if the user pressed Ctrl-C there;
* ``ENOSPC``, ``EROFS``, ``EACCES``, ``EIO``: raise that :class:`OSError` (a full disk, a read-only
  or forbidden folder, a failing drive);
* ``sleepS``: sleep ``S`` seconds there (to make two processes overlap at a chosen point).

It is a test hook, not a user option; the fault-injection tests in ``tests/faults/`` use it.
"""

from __future__ import annotations

import errno
import os
import signal
import time
from collections import Counter

ENV = "VWBENCH_FAULT"
_counts: Counter[str] = Counter()
_pid = os.getpid()


def _plan() -> dict[str, tuple[int, str]]:
    spec = os.environ.get(ENV, "").strip()
    plan: dict[str, tuple[int, str]] = {}
    for item in filter(None, (s.strip() for s in spec.split(","))):
        where, _, action = item.partition("=")
        phase, _, nth = where.rpartition("@")
        plan[phase] = (int(nth), action or "kill")
    return plan


def point(phase: str) -> None:
    """Mark that this process has reached ``phase`` (see the module docstring)."""
    if ENV not in os.environ:
        return
    global _pid
    if os.getpid() != _pid:  # a forked child counts from zero
        _counts.clear()
        _pid = os.getpid()
    _counts[phase] += 1
    target = _plan().get(phase)
    if target is None or target[0] != _counts[phase]:
        return
    action = target[1]
    if action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    elif action == "interrupt":
        os.kill(os.getpid(), signal.SIGINT)
    elif action.startswith("sleep"):
        time.sleep(float(action[5:]))
    else:
        code = getattr(errno, action)
        raise OSError(code, os.strerror(code))
