"""Mutation round 9 pins for vwbench.interrupts (deferred Ctrl-C, routed SIGTERM) and
vwbench.results.journal (what Ctrl-C says was saved or reused). Signals are raised in this
process, on pytest's main thread; each test puts the handlers and the module state back."""

from __future__ import annotations

import signal
import threading

import pytest

from vwbench import interrupts
from vwbench.interrupts import deferred_interrupt, route_sigterm, sigterm_routed
from vwbench.results import journal

RESUME = "run the same command again to resume from there"


@pytest.fixture
def signals(monkeypatch):
    """SIGINT and SIGTERM as a fresh process has them, a fresh interrupts.state; restored after."""
    previous = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    monkeypatch.setattr(interrupts, "state", interrupts._State())
    yield
    for s, handler in previous.items():
        signal.signal(s, handler)


@pytest.fixture
def fresh_journal():
    journal.reset()
    yield
    journal.reset()


def test_the_first_ctrl_c_is_deferred_and_the_second_stops_at_once(signals) -> None:
    with deferred_interrupt() as flag:
        signal.raise_signal(signal.SIGINT)
        assert flag.requested
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_a_callers_own_sigint_handler_is_left_in_place(signals) -> None:
    calls = []
    own = lambda signum, frame: calls.append(signum)  # noqa: E731
    signal.signal(signal.SIGINT, own)
    with deferred_interrupt() as flag:
        assert signal.getsignal(signal.SIGINT) is own
        signal.raise_signal(signal.SIGINT)
    assert calls == [signal.SIGINT] and not flag.requested


def test_a_sigterm_after_the_deferring_block_stops_at_once(signals) -> None:
    assert route_sigterm()
    with deferred_interrupt():
        pass
    assert interrupts.state.deferring == []
    with pytest.raises(KeyboardInterrupt):
        signal.raise_signal(signal.SIGTERM)
    assert interrupts.state.terminated


def test_a_routed_sigterm_defers_once_then_stops_and_is_remembered(signals) -> None:
    assert route_sigterm() and sigterm_routed()
    with deferred_interrupt() as flag:
        signal.raise_signal(signal.SIGTERM)
        assert flag.requested and interrupts.state.terminated  # the CLI then exits 143, not 130
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGTERM)


def test_an_inherited_ignore_is_kept_even_when_forced(signals) -> None:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    assert route_sigterm(force=True) is False
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_IGN and not sigterm_routed()


def test_another_handler_is_replaced_only_when_forced(signals) -> None:
    other = lambda signum, frame: None  # noqa: E731
    signal.signal(signal.SIGTERM, other)
    assert route_sigterm() is False and not sigterm_routed()
    assert route_sigterm(force=True) is True and sigterm_routed()


def test_route_sigterm_off_the_main_thread_does_nothing(signals) -> None:
    answers = []
    thread = threading.Thread(target=lambda: answers.append(route_sigterm(force=True)))
    thread.start()
    thread.join()
    assert answers == [False] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL


def test_a_deferred_interrupt_off_the_main_thread_leaves_the_signals_alone(signals) -> None:
    seen = []

    def work():
        with deferred_interrupt() as flag:
            seen.append((flag.requested, list(interrupts.state.deferring)))

    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    assert seen == [(False, [])]


def test_a_file_written_again_after_it_was_reused_counts_as_saved(tmp_path, fresh_journal) -> None:
    path = tmp_path / "result.json"
    journal.record(path, "result", reused=True)
    assert journal.summary() == f"reused result: {path}; {RESUME}"
    journal.record(path, "result")
    assert journal.summary() == f"saved result: {path}; {RESUME}"
    journal.forget(path)
    journal.record(path, "result")
    assert journal.summary() == f"saved result: {path}; {RESUME}"


def test_saved_files_come_before_reused_ones(tmp_path, fresh_journal) -> None:
    journal.record(tmp_path / "r.json", "result", reused=True)
    journal.record(tmp_path / "w.safetensors", "trained words")
    journal.record(tmp_path / "r2.json", "result", reused=True)
    assert journal.summary() == (f"saved trained words: {tmp_path / 'w.safetensors'}; "
                                 f"reused result: {tmp_path / 'r.json'}; result: {tmp_path / 'r2.json'}; {RESUME}")


def test_a_reset_forgets_what_was_reused(tmp_path, fresh_journal) -> None:
    journal.record(tmp_path / "r.json", "result", reused=True)
    journal.reset()
    assert journal.summary() == "nothing was saved yet"
    journal.record(tmp_path / "r.json", "result")
    assert journal.summary() == f"saved result: {tmp_path / 'r.json'}; {RESUME}"


def test_a_file_recorded_again_moves_to_the_end(tmp_path, fresh_journal) -> None:
    journal.record(tmp_path / "a", "checkpoint (step 1)")
    journal.record(tmp_path / "b", "trained words")
    journal.record(tmp_path / "a", "checkpoint (step 2)")
    assert journal.saved() == [(str(tmp_path / "b"), "trained words"), (str(tmp_path / "a"), "checkpoint (step 2)")]


def test_a_sweep_with_jobs_elsewhere_does_not_claim_nothing_was_saved(tmp_path) -> None:
    """A SIGTERMed slurm-local sweep said "nothing was saved yet" while a job had saved a chunk's
    training checkpoint: the driver hears only of finished jobs, so it says where jobs save."""
    from vwbench.results import journal

    journal.reset()
    try:
        journal.jobs_elsewhere(tmp_path / "runs")
        assert journal.summary() == (
            f"nothing was saved by this process yet; jobs it started may have saved training checkpoints under {tmp_path / 'runs'}: "
            "run the same command again to resume from them"
        )
        journal.record(tmp_path / "runs" / "r.json", "result")
        assert journal.summary().startswith(f"saved result: {tmp_path / 'runs' / 'r.json'}")
        journal.jobs_elsewhere(None)
        journal.forget(tmp_path / "runs" / "r.json")
        assert journal.summary() == "nothing was saved yet"
    finally:
        journal.reset()


def test_a_remote_sweep_that_fails_leaves_no_note_of_its_jobs(tmp_path, monkeypatch) -> None:
    """A job's error ended the sweep with the "jobs may have saved" note still set, so a later
    interrupted command of the same process would have named this sweep's folder."""
    import vwbench.executors as executors
    from vwbench.commands.sweep import sweep_command
    from vwbench.errors import UserError
    from vwbench.executors.local import LocalExecutor
    from vwbench.results import journal

    class FailingRemote(LocalExecutor):
        remote = True

        def run(self, jobs, what, console, journal=None):
            raise UserError("a job failed on the cluster")

    monkeypatch.setattr(executors, "make_executor", lambda name, settings=None: FailingRemote(settings))
    journal.reset()
    try:
        with pytest.raises(UserError, match="a job failed on the cluster"):
            sweep_command(suite="mini", dataset=["synth-voc"], pair=["clip->owlv2"], target=None, transfer=None, steps=1, trials=1, seed=0,
                          device="cpu", out=tmp_path / "out", weights=None, data_root=None, threads=1, executor="ray", workers=None, address=None,
                          slurm_partition=None, slurm_time=240, slurm_gpus=0, slurm_cpus=None, slurm_local=False, words_per_job=None, tasks_dir=None)
        assert journal.summary() == "nothing was saved yet"
    finally:
        journal.reset()
