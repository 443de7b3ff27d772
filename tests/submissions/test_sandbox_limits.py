"""The sandbox's process cap and the child's exact exit status.

* A submission that forks in a loop must not fill the host's process table: in the namespaces the
  kernel refuses its forks past the cap (the pid namespace's own pid_max, Linux 6.14+, or
  RLIMIT_NPROC set inside the user namespace, 5.14+ and not root), and vwbench stops the run once
  the namespace holds ``Limits.processes`` tasks, with a one-line error that says so.
* A child that calls ``sys.exit(130)`` exited with code 130; it was not killed by SIGINT. The
  namespaced run used to read the setup shell's 128 + N as signal N.

Every forking submission here is bounded however the cap behaves (3000 sleeping children, or a
bomb of at most 2 ** 12 processes) and runs under a short time limit, so a broken cap costs the
host a few thousand processes for seconds, not its process table. Namespace-only tests skip where
unprivileged user namespaces are not permitted; those that need the kernel's cap (not only
vwbench's count) skip where this kernel gives the namespace none for this user.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

from vwbench.submissions import sandbox
from vwbench.submissions.sandbox import Limits, SubmissionFailure, isolation_available, run_transfer_submission

from .helpers import LSTSQ_BODY, planted, transfer_folder

FAST = Limits(time_limit_s=20, memory_mb=1024, output_mb=4)
needs_namespaces = pytest.mark.skipif(not isolation_available(), reason="unprivileged user namespaces (unshare -rnmipf) are not permitted here")

# the child's audit hook refuses fork (and signals to other processes); it is not the boundary under
# test here, the namespace is, so these submissions switch it off as any submission can
DISABLE_HOOK = "import __main__\n__main__._refuse = lambda what: None\n"
FORKS = 3000  # far over the cap under test, far under the host's pid_max


def fork_loop(linger: float = 0.0) -> str:
    """A lstsq submission whose fit() forks sleeping children (each sleeps, none forks) until a
    fork fails or FORKS succeeded, records the count and the error for describe(), then waits
    ``linger`` seconds (so that a run the kernel's cap already stopped from forking is still
    there for vwbench's next count, instead of ending between two counts)."""
    return DISABLE_HOOK + f"""
import os, time
import numpy as np

class Transfer:
    info = None

    def fit(self, source, target, tokens):
        forked, error = 0, None
        for _ in range({FORKS}):
            try:
                pid = os.fork()
            except OSError as exc:
                error = type(exc).__name__
                break
            if pid == 0:
                time.sleep(30)
                os._exit(0)
            forked += 1
        self.info = {{"forked": forked, "error": error}}
        time.sleep({linger})
        self.T = np.linalg.lstsq(source, target, rcond=None)[0]

    def map(self, vectors):
        return vectors @ self.T

    def describe(self):
        return self.info
"""


def ending(how: str) -> str:
    """A submission whose fit() ends its process by ``how``."""
    return DISABLE_HOOK + f"import os, signal, sys\n\nclass Transfer:\n    def fit(self, source, target, tokens):\n        {how}\n\n    def map(self, vectors):\n        return vectors\n"


def run(folder: Path, limits: Limits = FAST):
    source, target, tokens = planted()
    return run_transfer_submission(folder, "transfer.py", "Transfer", source, target, tokens, source[:5], [""] * 5, limits)


def _host_tasks() -> int:
    """Processes and threads on the host (threads-max and pid_max count both)."""
    total = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            total += len(os.listdir(f"/proc/{pid}/task"))
        except OSError:
            pass
    return total


class HostWatch:
    """The most host tasks seen, sampled every 20 ms while the block runs."""

    def __init__(self) -> None:
        self.before = _host_tasks()
        self.peak = self.before
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while not self._stop.wait(0.02):
            self.peak = max(self.peak, _host_tasks())

    def __enter__(self) -> HostWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def added(self) -> int:
        return self.peak - self.before


def _kernel_cap_or_skip() -> str:
    if not isolation_available():
        pytest.skip("unprivileged user namespaces (unshare -rnmipf) are not permitted here")
    cap = sandbox.process_cap()
    if cap.startswith("no kernel limit"):
        pytest.skip(f"this kernel caps no namespace's processes for this user ({cap})")
    return cap


# --- the process cap ----------------------------------------------------------------------------------


@needs_namespaces
def test_a_fork_loop_is_stopped_at_the_process_limit_with_a_one_line_error(tmp_path: Path) -> None:
    limits = Limits(time_limit_s=20, memory_mb=1024, output_mb=4, processes=64)
    start = time.monotonic()
    with HostWatch() as host, pytest.raises(SubmissionFailure) as err:
        run(transfer_folder(tmp_path, fork_loop(linger=3.0)), limits)
    took = time.monotonic() - start
    message = str(err.value)
    assert "\n" not in message and "limit of 64 processes and threads" in message and "fork bomb" in message, message
    assert took < 15, f"stopped after {took:.1f} s, not at the limit"  # the time limit is 20 s
    # the kernel stops its forks at 64 to 364 tasks (pid_max = 64 + 300); without a kernel cap, at
    # most what it forked between two of vwbench's counts. Either way nowhere near FORKS.
    assert host.added < 364 + 300, f"{host.added} host tasks added (of {FORKS} forks tried)"


@needs_namespaces
def test_the_kernel_refuses_forks_past_the_cap_before_vwbench_counts(monkeypatch, tmp_path: Path) -> None:
    """With vwbench's own count out of the way, the fork that fails is the kernel's doing: the
    submission sees EAGAIN (BlockingIOError) after at most processes + 300 tasks, and its run
    ends normally once it stops forking (its sleeping children die with the namespace)."""
    cap = _kernel_cap_or_skip()
    monkeypatch.setattr(sandbox, "WATCH_INTERVAL_S", 60.0)
    limits = Limits(time_limit_s=30, memory_mb=1024, output_mb=4, processes=64)
    with HostWatch() as host:
        mapped, describe, facts = run(transfer_folder(tmp_path, fork_loop()), limits)
    assert describe["error"] == "BlockingIOError", describe
    assert 0 < describe["forked"] <= 64 + 300, describe
    assert host.added < 364 + 300, f"{host.added} host tasks added"
    assert facts["processes"] == 64 and facts["process_cap"] == cap and mapped.shape == (5, 6)


# a bomb left running when fit() returns: every process forks DEPTH times in all (so at most
# 2 ** DEPTH processes however the cap behaves), retrying a refused fork every 100 ms, then sleeps;
# fit() returns once its own fork is refused, i.e. with the namespace full and the bomb still trying
ORPHAN_BOMB = DISABLE_HOOK + """
import os, time
import numpy as np

DEPTH = 12

def bomb():
    done = 0
    while done < DEPTH:
        try:
            os.fork()
            done += 1  # in the parent and in the child alike: a child forks only what is left
        except OSError:
            time.sleep(0.1)
    time.sleep(60)
    os._exit(0)

class Transfer:
    def fit(self, source, target, tokens):
        if os.fork() == 0:
            bomb()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                pid = os.fork()
            except OSError:
                break
            if pid == 0:
                os._exit(0)
            os.waitpid(pid, 0)
            time.sleep(0.01)
        self.T = np.linalg.lstsq(source, target, rcond=None)[0]

    def map(self, vectors):
        return vectors @ self.T
"""


@needs_namespaces
def test_the_output_is_collected_after_a_fork_bomb_left_running_at_the_cap(monkeypatch, tmp_path: Path) -> None:
    """The submission's process returns with the namespace full of processes that keep forking.
    The setup shell needs pids of its own afterwards (umount, stat, cp) and its shell cannot
    retry a refused fork: the waiter, their subreaper, kills and reaps them all first. (Before,
    the shell's ``kill -s KILL -1`` was an illegal option to dash's kill and killed nothing.)"""
    _kernel_cap_or_skip()
    monkeypatch.setattr(sandbox, "WATCH_INTERVAL_S", 60.0)
    limits = Limits(time_limit_s=40, memory_mb=1024, output_mb=4, processes=64)
    with HostWatch() as host:
        mapped, _, _ = run(transfer_folder(tmp_path, ORPHAN_BOMB), limits)
    assert mapped.shape == (5, 6)
    assert host.added < 364 + 300, f"{host.added} host tasks added"


def test_processes_is_a_limit_and_a_fact() -> None:
    assert Limits().processes == 512 and Limits(processes=0).processes == 0
    assert "processes" in Limits().__dict__  # stored with the result's sandbox facts
    with pytest.raises(ValueError, match="at least 16"):
        Limits(processes=3)  # the sandbox's own shell and waiter would fill it


@needs_namespaces
def test_the_count_is_of_the_new_pid_namespace_only() -> None:
    """A count through a pid that is not in the sandbox's namespace (the setup shell's number
    reused by a host process after it ended) is never taken for the submission's."""
    import subprocess

    proc = subprocess.Popen(["unshare", "-rpf", "--kill-child", "sleep", "30"])  # its sleep dies with it
    try:
        for _ in range(100):
            pid1 = sandbox._namespace_init(proc.pid)
            if pid1:
                break
            time.sleep(0.02)
        assert pid1 and sandbox._in_new_pid_namespace(pid1, proc.pid)
        assert not sandbox._in_new_pid_namespace(os.getpid(), proc.pid)
    finally:
        proc.kill()
        proc.wait()


# --- the exit status ----------------------------------------------------------------------------------


@pytest.fixture(params=["namespaces", "fallback"])
def mode(request, monkeypatch) -> str:
    if request.param == "namespaces" and not isolation_available():
        pytest.skip("unprivileged user namespaces (unshare -rnmipf) are not permitted here")
    if request.param == "fallback":
        monkeypatch.setattr(sandbox, "isolation_available", lambda: False)
        monkeypatch.setattr(sandbox, "_warned_unisolated", True)
    return request.param


@pytest.mark.parametrize("how, code", [("sys.exit(130)", 130), ("os._exit(137)", 137), ("os._exit(255)", 255), ("sys.exit(129)", 129)])
def test_an_exit_code_over_128_is_an_exit_code_not_a_signal(mode: str, tmp_path: Path, how: str, code: int) -> None:
    with pytest.raises(SubmissionFailure) as err:
        run(transfer_folder(tmp_path, ending(how)))
    message = str(err.value)
    assert f"exited with code {code}" in message and "signal" not in message and "SIG" not in message, message


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGUSR1])
def test_a_signal_is_named_as_one(mode: str, tmp_path: Path, sig: signal.Signals) -> None:
    with pytest.raises(SubmissionFailure) as err:
        run(transfer_folder(tmp_path, ending(f"signal.signal({int(sig)}, signal.SIG_DFL); os.kill(os.getpid(), {int(sig)})")))
    message = str(err.value)
    assert f"was killed by signal {int(sig)} ({sig.name})" in message and "exited with code" not in message, message


@needs_namespaces
def test_a_child_that_kills_the_process_waiting_for_it_fails_with_one_line(tmp_path: Path) -> None:
    with pytest.raises(SubmissionFailure) as err:
        run(transfer_folder(tmp_path, ending("os.kill(os.getppid(), signal.SIGKILL); import time; time.sleep(30)")))
    message = str(err.value)
    assert "\n" not in message and "did not learn how" in message, message


@needs_namespaces
def test_a_clean_run_reports_its_status_and_the_cap(tmp_path: Path) -> None:
    _, _, facts = run(transfer_folder(tmp_path, LSTSQ_BODY))
    assert facts["processes"] == 512 and facts["process_cap"] == sandbox.process_cap()
