"""Ctrl-C, a real ``kill -9`` of a ``vwbench`` process started from the shell, and bit-identical
results across fresh processes."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.faults.conftest import child_env, result_numbers, run_args, single, words_bytes
from tests.faults.test_kill_resume import assert_matches_reference, assert_no_torn_files, assert_resumed_as_expected

LONG_STEPS = "200"  # long enough to signal a real process mid-training (checkpoints every 20 steps)


def _spawn(args: list[str], **env: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "vwbench.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=child_env(**env),
        # as from an interactive shell: a test run in the background would pass on an ignored SIGINT
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def _wait_for(pattern: str, root: Path, proc: subprocess.Popen, timeout: float = 600) -> Path:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        found = list(root.rglob(pattern)) if root.exists() else []
        if found:
            return found[0]
        if proc.poll() is not None:
            raise AssertionError(f"vwbench exited ({proc.returncode}) before {pattern} appeared: {proc.communicate()[1]}")
        time.sleep(0.02)
    proc.kill()
    raise AssertionError(f"no {pattern} under {root} after {timeout}s")


@pytest.fixture(scope="module")
def long_reference(zygote, fault_tasks, tmp_path_factory):
    out = tmp_path_factory.mktemp("long-reference")
    outcome = zygote.run(run_args(fault_tasks, out, "clip->clip", "--steps", LONG_STEPS))
    assert outcome.rc == 0, outcome.log
    result, words = single(out / "results", "*.json"), single(out / "words", "*.safetensors")
    from tests.faults.conftest import Reference

    return Reference(result_numbers(result), words_bytes(words), result.relative_to(out).as_posix(), words.relative_to(out).as_posix(), outcome.wall)


def test_ctrl_c_in_training_saves_a_checkpoint_exits_130_and_resumes(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    stopped = zygote.run(args, fault="train-step@3=interrupt")
    assert stopped.rc == 130, stopped.log
    assert "Traceback" not in stopped.log
    lines = [line for line in stopped.log.splitlines() if line.startswith("interrupted:")]
    assert len(lines) == 1 and "training checkpoint (step 3 of 6)" in lines[0] and "run the same command again" in lines[0], stopped.log
    resumed = zygote.run(args)
    assert resumed.rc == 0
    assert_resumed_as_expected(resumed.log, 3)
    assert_matches_reference(out, references["clip->clip"])


def test_ctrl_c_in_evaluation_keeps_the_words(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    stopped = zygote.run(args, fault="evaluated@1=interrupt")
    assert stopped.rc == 130 and "Traceback" not in stopped.log, stopped.log
    assert "interrupted: saved trained words: " in stopped.log and "training checkpoint" not in stopped.log
    resumed = zygote.run(args)
    assert resumed.rc == 0
    assert_resumed_as_expected(resumed.log, "reuse-words")
    assert_matches_reference(out, references["clip->clip"])


def test_real_ctrl_c_of_a_shell_started_run(zygote, fault_tasks, long_reference, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out, "clip->clip", "--steps", LONG_STEPS)
    proc = _spawn(args)
    _wait_for("*.trainstate", out / "words", proc)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    (line,) = [x for x in stderr.splitlines() if x.startswith("interrupted:")]
    assert "training checkpoint (step " in line and f" of {LONG_STEPS})" in line
    resumed = zygote.run(args)
    assert resumed.rc == 0 and "resuming training at step " in resumed.log, resumed.log
    assert_matches_reference(out, long_reference)


@pytest.mark.parametrize("seed", [21])
def test_real_kill_9_of_a_shell_started_run_at_a_random_moment(zygote, fault_tasks, long_reference, tmp_path, seed):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out, "clip->clip", "--steps", LONG_STEPS)
    proc = _spawn(args)
    _wait_for("*.trainstate", out / "words", proc)
    time.sleep(random.Random(seed).uniform(0.0, 1.0))
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=600)
    assert proc.returncode in (-signal.SIGKILL, 0)
    assert_no_torn_files(out)
    resumed = zygote.run(args)
    assert resumed.rc == 0, resumed.log
    assert_matches_reference(out, long_reference)


def test_same_command_and_seed_give_bit_identical_results_across_processes(fault_tasks, references, tmp_path):
    """Two fresh interpreters (with different hash seeds) and the forked reference agree on every
    number of the result and every bit of the trained words."""
    runs = []
    for hash_seed in ("1", "2"):
        out = tmp_path / f"runs{hash_seed}"
        proc = _spawn(run_args(fault_tasks, out, "owlv2->clip"), PYTHONHASHSEED=hash_seed)
        _, stderr = proc.communicate(timeout=900)
        assert proc.returncode == 0, stderr
        runs.append(out)
    ref = references["owlv2->clip"]
    for out in runs:
        assert_matches_reference(out, ref)
    a, b = (result_numbers(single(out / "results", "*.json")) for out in runs)
    assert a == b and a["per_word"] and any(w["classification_accuracy"] not in (0.0, 1.0) for w in a["per_word"])


def test_the_zygote_and_shell_started_runs_import_the_vwbench_under_test(zygote, tmp_path):
    """The reference runs (forked by the zygote) and the runs started as from a shell import the
    ``vwbench`` this test process imported, so that they run the same code: a clone's tests run
    with ``PYTHONPATH=<clone>/benchmark`` once compared the clone's runs with references of the
    checkout the virtualenv's editable install points at (its ``git_commit`` differed)."""
    import vwbench

    here = str(Path(vwbench.__file__).resolve())
    assert str(Path(zygote.vwbench_file()).resolve()) == here
    probe = subprocess.run([sys.executable, "-c", "import vwbench; print(vwbench.__file__)"], env=child_env(), capture_output=True, text=True,
                           cwd=tmp_path)
    assert probe.returncode == 0, probe.stderr
    assert str(Path(probe.stdout.strip()).resolve()) == here
