"""``kill -9`` at exact points of ``vwbench run``, then the same command: the rerun must finish
with exactly the numbers of an uninterrupted run and redo only what was not finished.

Each case kills a forked ``vwbench`` process with SIGKILL the N-th time it passes a named fault
point (``vwbench.faults``), checks what is on disk (no torn file under a real name), reruns the
same command and checks the evidence of what it reused: the training step it resumed from, the
reused words or the reused result. Points cover training (steps and checkpoints), the caches
(train-state and words files at each stage of their atomic write), the locks, evaluation and the
result file.
"""

from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from tests.faults.conftest import result_numbers, run_args, single, words_bytes

FRESH, REUSE_WORDS, REUSE_RESULT = "fresh", "reuse-words", "reuse-result"

# (task, fault spec, what the rerun must show: FRESH, a step it resumes from, REUSE_WORDS or REUSE_RESULT)
KILL_POINTS = [
    ("clip->clip", "lock:result@1", FRESH),
    ("clip->clip", "lock:words@1", FRESH),
    ("clip->clip", "train-step@1", FRESH),
    ("clip->clip", "train-step@3", 2),
    ("clip->clip", "train-step@6", 5),
    ("clip->clip", "train-checkpoint@1", 1),
    ("clip->clip", "train-checkpoint@3", 3),
    ("clip->clip", "train-checkpoint@5", 5),
    ("clip->clip", "write:train-state:tmp@1", FRESH),
    ("clip->clip", "write:train-state:synced@2", 1),
    ("clip->clip", "write:train-state:renamed@4", 4),
    ("clip->clip", "write:words:tmp@1", 5),
    ("clip->clip", "write:words:synced@1", 5),
    ("clip->clip", "write:words:renamed@1", REUSE_WORDS),
    ("clip->clip", "words-saved@1", REUSE_WORDS),
    ("clip->clip", "evaluated@1", REUSE_WORDS),
    ("clip->clip", "write:result:tmp@1", REUSE_WORDS),
    ("clip->clip", "write:result:synced@1", REUSE_WORDS),
    ("clip->clip", "write:result:renamed@1", REUSE_RESULT),
    ("clip->clip", "result-done@1", REUSE_RESULT),
    ("owlv2->clip", "train-step@4", 3),
    ("owlv2->clip", "train-checkpoint@2", 2),
    ("owlv2->clip", "write:words:synced@1", 5),
    ("owlv2->clip", "write:result:tmp@1", REUSE_WORDS),
]


def assert_no_torn_files(out: Path) -> None:
    """Every file under a real name is complete; only temp files (dot-named) may be partial."""
    from vwbench.results import read_result
    from vwbench.results.words_store import load_wordset

    for path in out.rglob("*"):
        if path.is_dir() or path.name.startswith(".") or path.parent.name == ".locks":
            continue
        if path.suffix == ".json":
            read_result(path)
        elif path.relative_to(out).parts[0] == "features":
            from safetensors import safe_open

            from vwbench.cache import FeatureCache

            with safe_open(str(path), framework="pt") as f:
                key = (f.metadata() or {}).get("key", "")
            namespace = path.relative_to(out).parts[1]
            cache = FeatureCache(out / "features")
            assert cache.path(namespace, key) == path and cache.load(namespace, key) is not None, f"torn feature file {path}"
        elif path.suffix == ".safetensors":
            assert load_wordset(path) is not None, f"torn words file {path}"
        elif path.suffix == ".trainstate":
            from safetensors.torch import load_file

            load_file(str(path))
        else:
            raise AssertionError(f"unexpected file {path}")


def assert_resumed_as_expected(log: str, expect) -> None:
    resumed = re.search(r"resuming training at step (\d+) of", log)
    if expect == FRESH:
        assert resumed is None and "reusing" not in log, log
        assert "saved trained words" in log, log
    elif expect == REUSE_WORDS:
        assert "reusing trained words" in log and resumed is None and "reusing the stored result" not in log, log
    elif expect == REUSE_RESULT:
        assert "reusing the stored result" in log and "saved trained words" not in log, log
    else:
        assert resumed is not None and int(resumed.group(1)) == expect, log


def assert_matches_reference(out: Path, ref) -> None:
    result = single(out / "results", "*.json")
    assert result.relative_to(out).as_posix() == ref.result_name
    assert result_numbers(result) == ref.numbers  # exact: floats compared bit for bit
    words = single(out / "words", "*.safetensors")
    assert words.relative_to(out).as_posix() == ref.words_name
    assert words_bytes(words) == ref.words
    leftovers = [p for p in out.rglob("*") if p.suffix in (".tmp", ".trainstate")]
    assert not leftovers, f"left behind: {leftovers}"


@pytest.mark.parametrize(("task", "fault", "expect"), KILL_POINTS, ids=[f"{t}:{f}" for t, f, _ in KILL_POINTS])
def test_kill_at_a_point_then_resume(zygote, fault_tasks, references, tmp_path, task, fault, expect):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out, task)
    killed = zygote.run(args, fault=fault)
    assert killed.rc == -9, f"the run was not killed at {fault} (exit {killed.rc}):\n{killed.log}"
    assert_no_torn_files(out)
    resumed = zygote.run(args)
    assert resumed.rc == 0, resumed.log
    assert_resumed_as_expected(resumed.log, expect)
    assert_matches_reference(out, references[task])


def test_killed_twice_during_training_resumes_from_the_latest_checkpoint(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    assert zygote.run(args, fault="train-checkpoint@2").rc == -9  # checkpoint at step 2
    second = zygote.run(args, fault="train-checkpoint@2")  # resumes at 2, killed after the checkpoint at 4
    assert second.rc == -9 and "resuming training at step 2 of" in second.log
    third = zygote.run(args)
    assert third.rc == 0
    assert_resumed_as_expected(third.log, 4)
    assert_matches_reference(out, references["clip->clip"])


def test_a_corrupted_checkpoint_is_ignored_and_training_starts_over(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    assert zygote.run(args, fault="train-checkpoint@3").rc == -9
    state = single(out / "words", "*.trainstate")
    data = bytearray(state.read_bytes())
    data[-5] ^= 0xFF  # a flipped bit in the tensor data: the file still parses, its checksum fails
    state.write_bytes(bytes(data))
    rerun = zygote.run(args)
    assert rerun.rc == 0
    assert_resumed_as_expected(rerun.log, FRESH)
    assert_matches_reference(out, references["clip->clip"])


@pytest.mark.parametrize("seed", [11, 12, 13, 14])
def test_kill_at_a_random_time_then_resume(zygote, fault_tasks, references, tmp_path, seed):
    """SIGKILL from outside after a seeded random share of an uninterrupted run's time."""
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    delay = random.Random(seed).uniform(0.05, 0.95) * references["clip->clip"].wall
    killed = zygote.run(args, kill_after=delay)
    assert killed.rc in (-9, 0), killed.log
    assert_no_torn_files(out)
    resumed = zygote.run(args)
    assert resumed.rc == 0, resumed.log
    assert_matches_reference(out, references["clip->clip"])
    if killed.rc == 0:  # the run beat the timer (a loaded machine): then everything is reused
        assert "reusing the stored result" in resumed.log
