"""Two or more ``vwbench run`` processes on one output folder at the same time.

The fault hook's ``sleep`` action holds a process inside a lock for a moment, so the overlap is
certain rather than a matter of timing: the other process must wait and then reuse, never
compute the same unit again or corrupt a file.
"""

from __future__ import annotations

from tests.faults.conftest import result_numbers, run_args
from tests.faults.test_kill_resume import assert_matches_reference, assert_no_torn_files


def _count(outcomes, text: str) -> int:
    return sum(o.log.count(text) for o in outcomes)


def test_same_command_twice_at_once_trains_and_evaluates_once(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    hold = "lock:result@1=sleep1.5"  # whichever takes the result's lock first holds it a while
    a, b = zygote.run_parallel([(args, hold), (args, hold)])
    assert a.rc == 0 and b.rc == 0, a.log + b.log
    assert _count([a, b], "saved trained words") == 1
    first, second = (a, b) if "saved trained words" in a.log else (b, a)
    assert "waiting for another vwbench process working on clip->clip on synth-tiny" in second.log
    assert "reusing the stored result" in second.log and "reusing" not in first.log
    assert_matches_reference(out, references["clip->clip"])


def test_three_processes_at_once(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    outcomes = zygote.run_parallel([(args, "lock:result@1=sleep1")] * 3)
    assert [o.rc for o in outcomes] == [0, 0, 0], "".join(o.log for o in outcomes)
    assert _count(outcomes, "saved trained words") == 1
    assert _count(outcomes, "reusing the stored result") == 2
    assert_matches_reference(out, references["clip->clip"])


def test_two_tasks_sharing_words_train_them_once(zygote, fault_tasks, references, tmp_path):
    """clip->clip and clip->owlv2 need the same clip words: one trains, the other waits on the
    words' lock and reuses them; both results are written."""
    out = tmp_path / "runs"
    hold = "lock:words@1=sleep1.5"  # whichever takes the words' lock first holds it a while
    a, b = zygote.run_parallel([(run_args(fault_tasks, out, "clip->clip"), hold), (run_args(fault_tasks, out, "clip->owlv2"), hold)])
    assert a.rc == 0 and b.rc == 0, a.log + b.log
    trainer, waiter = (a, b) if "saved trained words" in a.log else (b, a)
    assert "saved trained words" not in waiter.log
    assert "waiting for another vwbench process working on the words of clip on synth-tiny" in waiter.log
    assert "reusing trained words" in waiter.log and "reusing" not in trainer.log
    results = sorted(p.relative_to(out).as_posix() for p in (out / "results").rglob("*.json"))
    assert len(results) == 2
    assert result_numbers(out / references["clip->clip"].result_name) == references["clip->clip"].numbers
    assert_no_torn_files(out)


def test_a_waiting_process_takes_over_when_the_lock_holder_is_killed(zygote, fault_tasks, references, tmp_path):
    """The first process is killed by SIGKILL mid-training while the second waits on its lock:
    the kernel drops the dead process's lock, and the second resumes from its checkpoint."""
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    # the second starts a second late, so the first surely holds the locks when it arrives
    first, second = zygote.run_parallel([(args, "lock:words@1=sleep2,train-checkpoint@3"), (args, "lock:create@1=sleep1")])
    assert first.rc == -9, first.log
    assert second.rc == 0, second.log
    assert "waiting for another vwbench process" in second.log
    assert "resuming training at step 3 of" in second.log
    assert_matches_reference(out, references["clip->clip"])


def test_different_seeds_at_once_do_not_interfere(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    a, b = zygote.run_parallel([(run_args(fault_tasks, out), None), (run_args(fault_tasks, out, "clip->clip", "--seed", "5"), None)])
    assert a.rc == 0 and b.rc == 0, a.log + b.log
    assert _count([a, b], "saved trained words") == 2 and "waiting" not in a.log + b.log
    assert len(list((out / "words").rglob("*.safetensors"))) == 2
    assert result_numbers(out / references["clip->clip"].result_name) == references["clip->clip"].numbers
    assert len(list((out / "results").rglob("*.json"))) == 2
    assert_no_torn_files(out)
