"""Mutation round 14: the sandbox's process cap and exact exit status, beyond test_sandbox_limits.py.

* the setup script and the waiter run on their own (no vwbench run, and not behind
  ``isolation_available()``, whose probe runs the same script: a setup that broke its status
  file would make the namespace tests skip instead of fail): the status file's lines
  (``pid_max``, ``exit N`` / ``signal N``, ``done``), the shell's 128 + N, a child that cannot
  write the status file, an orphan that does not hold up the end, the waiter's RLIMIT_NPROC;
* the count of a pid namespace's tasks (threads included, pid 1 included, that namespace's only);
* the decisions on their own: _watch at exactly the cap, _status_of, _describe_status,
  _nproc_rlimit_binds, _isolated_command's cap arguments, process_cap's wording, Limits' minimum;
* whole runs: one at the minimum cap and one with no cap are not stopped; a setup that fails to
  collect the outputs after the child ended fails the run saying so.

Every process started here is bounded (a few sleeps, a few threads) and in its own pid namespace.
"""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from vwbench.submissions import sandbox
from vwbench.submissions.sandbox import MIN_PROCESSES, Limits, SubmissionFailure, isolation_available

from .helpers import transfer_folder
from .test_sandbox_limits import run

needs_namespaces = pytest.mark.skipif(not isolation_available(), reason="unprivileged user namespaces (unshare -rnmipf) are not permitted here")
NOBODY = 65534


def _kernel() -> tuple[int, int]:
    try:
        return tuple(int(p) for p in os.uname().release.split("-")[0].split(".")[:2])  # type: ignore[return-value]
    except ValueError:
        return (0, 0)


@functools.lru_cache(maxsize=1)
def _pid_max_settable() -> bool:
    """Whether a new pid namespace's own pid_max can be lowered here (Linux 6.14+), found
    without vwbench's setup script."""
    if shutil.which("unshare") is None:
        return False
    done = subprocess.run(["unshare", "-rmpf", "--mount-proc", "--kill-child", "sh", "-c", "echo 400 > /proc/sys/kernel/pid_max"],
                          capture_output=True, timeout=20)
    return done.returncode == 0


# --- the setup script and the waiter, on their own -----------------------------------------------------


def setup_run(child: list[str], processes: int = 64, timeout: float = 20) -> tuple[int, list[str], float]:
    """Run the namespaced setup with ``child`` in a fresh work folder, as a run does: (its exit
    status, out/status's lines, seconds taken). Skips where the setup cannot run here."""
    if any(shutil.which(tool) is None for tool in ("unshare", "setpriv", "mount", "umount", "mountpoint", "sh")):
        pytest.skip("the sandbox's tools are not all installed")
    with tempfile.TemporaryDirectory(prefix="vwbench-mut14-") as tmp:
        work = Path(tmp)
        for sub in sandbox.WORK_FOLDERS:
            (work / sub).mkdir()
        command = sandbox._isolated_command(work, 2**20, child, processes)
        start = time.monotonic()
        done = subprocess.run(command, capture_output=True, timeout=timeout, cwd=work, env=sandbox._clean_env(work, 1))
        took = time.monotonic() - start
        error = (work / "out" / "setup-error").read_text().strip() if (work / "out" / "setup-error").is_file() else None
        status = (work / "out" / "status").read_text().splitlines() if (work / "out" / "status").is_file() else None
    if error is not None or (status is None and done.returncode != 0):
        pytest.skip(f"the sandbox cannot be set up here: {error or done.stderr.decode(errors='replace').strip()[-200:]}")
    assert status is not None, "the setup exited without writing out/status"
    return done.returncode, status, took


def _pid_max_lines(processes: int) -> list[str]:
    return [f"pid_max {processes + 300}"] if processes > 0 and _pid_max_settable() else []


@pytest.mark.parametrize("child, rc, line", [
    (["sh", "-c", "exit 0"], 0, "exit 0"),
    (["sh", "-c", "exit 130"], 130, "exit 130"),
    (["sh", "-c", "kill -TERM $$"], 128 + 15, "signal 15"),
    (["sh", "-c", "kill -KILL $$"], 128 + 9, "signal 9"),
], ids=["exit 0", "exit 130", "SIGTERM", "SIGKILL"])
def test_the_setup_records_the_child_s_exact_status_and_then_done(child: list[str], rc: int, line: str) -> None:
    code, lines, _ = setup_run(child)
    assert lines == _pid_max_lines(64) + [line, "done"]
    assert code == rc  # the shell's own convention: 128 + N for signal N


def test_the_setup_lowers_no_pid_max_without_a_cap() -> None:
    code, lines, _ = setup_run(["sh", "-c", "exit 0"], processes=0)
    assert (code, lines) == (0, ["exit 0", "done"])


def test_the_child_cannot_write_the_status_file() -> None:
    """The waiter closes descriptor 5 before it starts the child: a child's own "exit 0" and
    "done" lines never reach out/status."""
    code, lines, _ = setup_run(["sh", "-c", 'echo "exit 0" >&5; echo done >&5; exit 3'])
    assert (code, lines) == (3, _pid_max_lines(64) + ["exit 3", "done"])


def test_an_orphan_left_running_does_not_hold_up_the_end() -> None:
    """The waiter is the subreaper of what the child leaves running: it kills it, then reaps it."""
    code, lines, took = setup_run(["sh", "-c", "sleep 60 & exit 0"], timeout=20)
    assert (code, lines[-2:]) == (0, ["exit 0", "done"])
    assert took < 10, f"the setup ended {took:.1f} s after the child, with its orphan's sleep 60"


def _as_another_user(argv: list[str]) -> list[str]:
    """``argv`` run by a user other than root (RLIMIT_NPROC binds no root process): the user
    running the tests, or nobody where that is root. Skips where that is not possible."""
    if os.getuid() != 0:
        return argv
    if shutil.which("setpriv") is None:
        pytest.skip("running as root, and setpriv is not installed to run the waiter as another user")
    return ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", *argv]


def waiter_run(nproc: int, child: str) -> tuple[int, list[str]]:
    """The waiter on its own, as pid 1 of a new pid namespace (its kill(-1) must never reach the
    host's processes), run by a user other than root; (its exit status, the lines it wrote)."""
    if shutil.which("unshare") is None:
        pytest.skip("unshare is not installed")
    python = None
    for candidate in (sys.executable, shutil.which("python3"), "/usr/bin/python3", "/usr/local/bin/python3"):  # the waiter needs only the standard library
        probe = _as_another_user(["unshare", "-rpf", "--kill-child", candidate or "python3", "-I", "-S", "-c", "pass"])
        if candidate and subprocess.run(probe, capture_output=True, timeout=20).returncode == 0:
            python = candidate
            break
    if python is None:
        pytest.skip("no Python that a user other than root may run in a new user namespace (or no user namespaces here)")
    with tempfile.TemporaryDirectory(prefix="vwbench-mut14-") as tmp:
        status = Path(tmp) / "status"
        inner = ["unshare", "-rpf", "--kill-child", python, "-I", "-S", "-c", sandbox._WAITER, str(nproc), "sh", "-c", child]
        # descriptor 5 is opened by a shell outside (as the setup script does), then kept through setpriv and unshare
        command = ["sh", "-c", 'exec 5>"$0" && exec "$@"', str(status), *_as_another_user(inner)]
        done = subprocess.run(command, capture_output=True, timeout=20, cwd=tmp)
        lines = status.read_text().splitlines()
    if not lines and done.stderr.decode(errors="replace").startswith("unshare: "):  # util-linux's own error, not the waiter's
        pytest.skip(f"unprivileged user namespaces are not permitted here: {done.stderr.decode(errors='replace').strip()[-200:]}")
    return done.returncode, lines


def test_the_waiter_told_no_cap_sets_no_process_limit() -> None:
    """nproc 0 (no cap, or RLIMIT_NPROC would not bind): the waiter sets no RLIMIT_NPROC, so
    it and its child may fork."""
    code, lines = waiter_run(0, "sleep 0.1 & sleep 0.1 & wait; exit 7")
    assert (code, lines) == (7, ["exit 7"])


def test_the_waiter_sets_the_cap_as_rlimit_nproc() -> None:
    """nproc 3: the namespace's tasks (the waiter, the child's shell, one sleep) fill it, so the
    child's next fork fails (the shell then exits 2)."""
    if _kernel() < (5, 14):
        pytest.skip("RLIMIT_NPROC counts per user namespace from Linux 5.14")
    code, lines = waiter_run(3, "sleep 1 & sleep 1 & wait; exit 7")
    assert lines and lines[0] != "exit 7" and code != 7, (code, lines)


# --- counting a namespace's tasks --------------------------------------------------------------------


THREADS_CHILD = "import threading, time\nfor _ in range(4):\n    threading.Thread(target=time.sleep, args=(30,), daemon=True).start()\ntime.sleep(30)\n"


@needs_namespaces
def test_a_namespace_s_tasks_are_counted_threads_and_pid_1_included() -> None:
    """pid 1 (a shell) and a Python with 4 threads of its own: 1 + 5 tasks, none of the host's."""
    proc = subprocess.Popen(["unshare", "-rmpf", "--mount-proc", "--kill-child", "sh", "-c", f'{sys.executable} -I -S -c "$0"; :', THREADS_CHILD])
    try:
        counts = []
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pid1 = sandbox._namespace_init(proc.pid)
            counts.append(sandbox._tasks_in_namespace(pid1) if pid1 else 0)
            if counts[-1] == 6:
                break
            time.sleep(0.05)
        assert counts[-1] == 6, f"counted {counts[-5:]}"
        assert sandbox._in_new_pid_namespace(pid1, proc.pid)
    finally:
        proc.kill()
        proc.wait()


# --- the decisions on their own ----------------------------------------------------------------------


class _Waiting:
    """A process that never ends: wait() sleeps (at most 20 ms) and times out."""

    pid = 4242

    def wait(self, timeout=None):
        time.sleep(min(timeout, 0.02))
        raise subprocess.TimeoutExpired("child", timeout)


def _watch(monkeypatch, count: int, processes: int, isolated: bool = True, in_namespace: bool = True) -> tuple[tuple, list[int]]:
    counted: list[int] = []
    monkeypatch.setattr(sandbox, "WATCH_INTERVAL_S", 0.02)
    monkeypatch.setattr(sandbox, "_namespace_init", lambda pid: 4243)
    monkeypatch.setattr(sandbox, "_tasks_in_namespace", lambda pid1: counted.append(pid1) or count)
    monkeypatch.setattr(sandbox, "_in_new_pid_namespace", lambda pid, unshare: in_namespace)
    limits = Limits(time_limit_s=0.3, memory_mb=1024, output_mb=4, processes=processes)
    return sandbox._watch(_Waiting(), limits, time.monotonic(), isolated), counted


def test_watch_stops_a_run_at_exactly_its_cap(monkeypatch) -> None:
    assert _watch(monkeypatch, 64, 64)[0] == (None, 64)
    assert _watch(monkeypatch, 65, 64)[0] == (None, 65)
    assert _watch(monkeypatch, 63, 64)[0] == (None, 0)  # one under: waited out to the time limit


def test_watch_gives_up_at_the_time_limit_not_later(monkeypatch) -> None:
    start = time.monotonic()
    result, counted = _watch(monkeypatch, 3, 64)  # never at the cap: waited out
    took = time.monotonic() - start
    assert result == (None, 0) and counted
    assert 0.29 <= took < 0.55, f"gave up after {took:.2f} s of a 0.3 s time limit"


def test_watch_counts_only_the_sandbox_s_own_namespace(monkeypatch) -> None:
    """A pid1 whose number a host process took meanwhile: its namespace is not counted."""
    assert _watch(monkeypatch, 10_000, 64, in_namespace=False)[0] == (None, 0)


@pytest.mark.parametrize("processes, isolated", [(0, True), (64, False)], ids=["no cap", "no namespaces"])
def test_watch_counts_nothing_without_a_cap_or_namespaces(monkeypatch, processes: int, isolated: bool) -> None:
    result, counted = _watch(monkeypatch, 10_000, processes, isolated=isolated)
    assert result == (None, 0) and counted == []


def test_status_of_reads_the_lines_the_setup_and_the_waiter_write() -> None:
    status = sandbox._status_of(b"pid_max 812\nexit 130\ndone\n")
    assert (status.code, status.pid_max, status.done) == (130, 812, True)
    status = sandbox._status_of(b"pid_max 364\nsignal 15\n")
    assert (status.code, status.pid_max, status.done) == (-15, 364, False)  # outputs not collected
    assert sandbox._status_of(b"exit 0\ndone\n").code == 0
    status = sandbox._status_of(None)
    assert (status.code, status.pid_max, status.done, status.lines) == (None, None, False, ())


def test_describe_status_names_a_signal_only_for_a_negative_code() -> None:
    assert sandbox._describe_status(0) == "exited with code 0"
    assert sandbox._describe_status(137) == "exited with code 137"
    assert sandbox._describe_status(-9) == "was killed by signal 9 (SIGKILL)"
    assert sandbox._describe_status(-200) == "was killed by signal 200"  # no such signal: no name, no error


@pytest.mark.parametrize("uid, release, binds", [
    (1000, "5.14.0-1-amd64", True), (1000, "6.1.0-13-amd64", True), (1000, "5.13.19", False), (1000, "4.19.0", False),
    (0, "6.18.0", False), (1000, "not-a-version", False),
])
def test_nproc_rlimit_binds_a_user_other_than_root_from_linux_5_14(monkeypatch, uid: int, release: str, binds: bool) -> None:
    monkeypatch.setattr(os, "getuid", lambda: uid)
    monkeypatch.setattr(os, "uname", lambda: SimpleNamespace(release=release))
    assert sandbox._nproc_rlimit_binds() is binds


@pytest.mark.parametrize("processes, binds, shell, waiter", [(64, True, "64", "64"), (64, False, "64", "0"), (0, True, "0", "0")])
def test_isolated_command_passes_the_cap_to_the_setup_and_where_it_binds_to_the_waiter(
        monkeypatch, tmp_path: Path, processes: int, binds: bool, shell: str, waiter: str) -> None:
    monkeypatch.setattr(sandbox, "_nproc_rlimit_binds", lambda: binds)
    argv = sandbox._isolated_command(tmp_path / "work", 2**20, ["true"], processes)
    at = argv.index("vwbench-sandbox")
    assert argv[at + 1:at + 4] == [str(tmp_path / "work"), str(2**20), shell]
    assert argv[argv.index(sandbox._WAITER) + 1] == waiter
    assert argv[-1] == "true"


@pytest.mark.parametrize("pid_max, binds, said", [
    (364, False, "the pid namespace's pid_max; vwbench stops a run at the limit"),
    (364, True, "the pid namespace's pid_max and RLIMIT_NPROC in the user namespace; vwbench stops a run at the limit"),
    (None, True, "RLIMIT_NPROC in the user namespace; vwbench stops a run at the limit"),
    (None, False, "no kernel limit here (needs Linux 6.14+, or 5.14+ and a user other than root); vwbench stops a run at the limit"),
])
def test_process_cap_says_which_kernel_limits_apply(monkeypatch, pid_max, binds: bool, said: str) -> None:
    monkeypatch.setattr(sandbox, "isolation_available", lambda: True)
    monkeypatch.setattr(sandbox, "_probe_pid_max", pid_max)
    monkeypatch.setattr(sandbox, "_nproc_rlimit_binds", lambda: binds)
    assert sandbox.process_cap() == said
    monkeypatch.setattr(sandbox, "isolation_available", lambda: False)
    assert sandbox.process_cap() == "none: no pid namespace"


@needs_namespaces
def test_the_probe_finds_the_pid_namespace_s_pid_max_where_the_kernel_has_one() -> None:
    if not _pid_max_settable():
        pytest.skip("this kernel gives a pid namespace no pid_max of its own (Linux 6.14+)")
    assert sandbox._probe_pid_max == Limits().processes + 300
    assert sandbox.process_cap().startswith("the pid namespace's pid_max")


def test_the_minimum_cap_itself_is_accepted() -> None:
    assert Limits(processes=MIN_PROCESSES).processes == MIN_PROCESSES == 16
    with pytest.raises(ValueError, match="at least 16, not 15"):
        Limits(processes=MIN_PROCESSES - 1)


# --- whole runs ---------------------------------------------------------------------------------------


SLOW_LSTSQ = """
import time
import numpy as np

class Transfer:
    def fit(self, source, target, tokens):
        time.sleep(0.8)  # several of vwbench's counts
        self.T = np.linalg.lstsq(source.astype(np.float64), target.astype(np.float64), rcond=None)[0]

    def map(self, vectors):
        return vectors @ self.T
"""


@needs_namespaces
@pytest.mark.parametrize("processes", [MIN_PROCESSES, 0], ids=["the minimum cap", "no cap"])
def test_a_quiet_run_is_not_stopped_by_the_minimum_cap_or_without_one(tmp_path: Path, processes: int) -> None:
    """The sandbox's own shell, waiter and child fit in the minimum; with no cap nothing is counted."""
    limits = Limits(time_limit_s=20, memory_mb=1024, output_mb=4, processes=processes)
    mapped, _, facts = run(transfer_folder(tmp_path, SLOW_LSTSQ), limits)
    assert mapped.shape == (5, 6) and facts["processes"] == processes
    assert facts["process_cap"] == (sandbox.process_cap() if processes else "none: Limits.processes is 0")


@needs_namespaces
def test_a_setup_that_fails_after_the_child_ended_fails_the_run_saying_so(monkeypatch, tmp_path: Path) -> None:
    """As if the setup shell died before it copied the outputs down (no "done" line): the child's
    own status is reported, and that its outputs were not collected."""
    assert "printf 'done\\n' >&5\n" in sandbox._SETUP
    monkeypatch.setattr(sandbox, "_SETUP", sandbox._SETUP.replace("printf 'done\\n' >&5\n", ""))
    with pytest.raises(SubmissionFailure) as err:
        run(transfer_folder(tmp_path, SLOW_LSTSQ.replace("time.sleep(0.8)", "pass")))
    message = str(err.value)
    assert "\n" not in message and "exited with code 0, and then the sandbox failed to collect its output" in message, message
