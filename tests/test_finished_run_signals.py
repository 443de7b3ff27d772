"""A Ctrl-C or SIGTERM that lands after a command has finished (while the interpreter shuts down)
neither changes its exit code nor prints a traceback: a script reading `path=$(vwbench run ...)`
keeps a run whose result is stored."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import vwbench

LATE_SIGNAL = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import vwbench.cli as cli

    def app(standalone_mode=False):
        def late():  # a non-daemon thread: the interpreter joins it at exit, when the signal lands
            time.sleep(0.3)
            os.kill(os.getpid(), signal.{name})
            time.sleep(0.3)
        threading.Thread(target=late).start()
        print("runs/results/x.json")
        return 0

    cli.app = app
    sys.argv = ["vwbench", "run"]
    cli.entry()
    """
)


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_a_signal_after_the_command_finished_is_ignored(name: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(Path(vwbench.__file__).resolve().parents[1])}
    proc = subprocess.run([sys.executable, "-c", LATE_SIGNAL.format(name=name)], capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, (proc.returncode, proc.stderr)
    assert proc.stdout == "runs/results/x.json\n" and "KeyboardInterrupt" not in proc.stderr, proc.stderr


def test_the_handlers_are_only_ignored_once_the_command_returned_and_only_by_the_command(monkeypatch) -> None:
    import vwbench.cli as cli

    seen: list[object] = []
    monkeypatch.setattr(cli, "app", lambda standalone_mode=False: seen.append(signal.getsignal(signal.SIGINT)) or 0)
    monkeypatch.setattr(sys, "argv", ["vwbench", "ls"])
    before = (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM))
    try:
        cli.main()  # in-process callers (tests) keep their handlers
        assert signal.getsignal(signal.SIGINT) == before[0]
        cli.entry()
        assert seen and all(h is not signal.SIG_IGN for h in seen)  # Ctrl-C still stops the command itself
        assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == (signal.SIG_IGN, signal.SIG_IGN)
    finally:
        signal.signal(signal.SIGINT, before[0])
        signal.signal(signal.SIGTERM, before[1])


def test_an_error_raised_because_of_a_ctrl_c_exits_as_an_interrupt(monkeypatch, capsys) -> None:
    """A C extension whose import a Ctrl-C interrupts raises "ImportError: initialization failed"
    with the KeyboardInterrupt as its context: the exit is the interrupt's, not a traceback."""
    import vwbench.cli as cli
    from vwbench.interrupts import state

    monkeypatch.setattr(state, "terminated", False)  # no SIGTERM recorded by an earlier test

    def app(standalone_mode=False):
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt:
            raise ImportError("initialization failed")

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(sys, "argv", ["vwbench", "check"])
    before = signal.getsignal(signal.SIGTERM)
    try:
        with pytest.raises(SystemExit) as info:
            cli.main()
    finally:
        signal.signal(signal.SIGTERM, before)
    assert info.value.code == 130 and capsys.readouterr().err.startswith("interrupted: ")
    # an error of its own still propagates
    monkeypatch.setattr(cli, "app", lambda standalone_mode=False: (_ for _ in ()).throw(ImportError("no module")))
    try:
        with pytest.raises(ImportError, match="no module"):
            cli.main()
    finally:
        signal.signal(signal.SIGTERM, before)
