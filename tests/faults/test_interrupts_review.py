"""Interruptions the other fault tests leave out: SIGTERM, Ctrl-C and ``kill -9`` of a sweep, Ctrl-C
while waiting for another process's lock, two sweeps into one folder, and the files written
outside a run's own units (sample images, ``data prepare``'s split file, an analysis).

Several tests here reproduced defects found in review (SIGTERM skipped every cleanup, samples
written after the result, temp files a killed `data prepare` or analysis left, the feature cache
taking a nearly full disk's last space, submitit's controller traceback); they now pin the fixes.
"""

from __future__ import annotations

import json
import re
import signal
from pathlib import Path

import pytest

from tests.faults.conftest import result_numbers, run_args, single
from tests.faults.test_bad_data import coco_world  # noqa: F401  (fixture)
from tests.faults.test_disk import small_disk  # noqa: F401  (fixture)
from tests.faults.test_kill_resume import assert_matches_reference, assert_no_torn_files, assert_resumed_as_expected
from tests.faults.test_signals_and_determinism import LONG_STEPS, _spawn, _wait_for, long_reference  # noqa: F401  (fixture)
from tests.processes import alive, processes_in_group


def sweep_args(tasks: Path, out: Path, *pairs: str) -> list[str]:
    pair_args = [a for p in pairs for a in ("--pair", p)]
    return ["sweep", "--suite", "tiny", "--dataset", "synth-tiny", *pair_args, "--tasks-dir", str(tasks), "--out", str(out),
            "--device", "cpu", "--threads", "1"]


def interrupted_lines(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("interrupted:")]


def results_of(out: Path) -> dict[str, dict]:
    return {p.relative_to(out).as_posix(): result_numbers(p) for p in sorted((out / "results").rglob("*.json"))}


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.rglob("*.tmp"))


# ---- SIGTERM (what `timeout`, `kill`, a scheduler's time limit send) -----------------------------


def test_sigterm_during_training_saves_a_checkpoint_like_ctrl_c_and_the_rerun_resumes(zygote, fault_tasks, long_reference, tmp_path):  # noqa: F811
    """SIGTERM takes Ctrl-C's path: training saves at its next step, one line says so, exit 143;
    the same command resumes from that checkpoint to the same bits."""
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out, "clip->clip", "--steps", LONG_STEPS)
    proc = _spawn(args)
    _wait_for("*.trainstate", out / "words", proc)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    assert "Traceback" not in stderr and not interrupted_lines(stderr)
    (line,) = [x for x in stderr.splitlines() if x.startswith("terminated:")]
    assert "training checkpoint (step " in line and f" of {LONG_STEPS})" in line
    assert_no_torn_files(out)
    resumed = zygote.run(args)
    assert resumed.rc == 0 and "resuming training at step " in resumed.log, resumed.log
    assert_matches_reference(out, long_reference)


# ---- sweeps --------------------------------------------------------------------------------------


def test_ctrl_c_of_a_sweep_in_training_exits_130_with_one_line_and_resumes(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = sweep_args(fault_tasks, out, "clip->clip")
    stopped = zygote.run(args, fault="train-step@3=interrupt")
    assert stopped.rc == 130, stopped.log
    assert "Traceback" not in stopped.log
    (line,) = interrupted_lines(stopped.log)
    assert "training checkpoint (step 3 of 6)" in line and "run the same command again" in line
    assert_no_torn_files(out)
    resumed = zygote.run(args)
    assert resumed.rc == 0, resumed.log
    assert_resumed_as_expected(resumed.log, 3)
    assert_matches_reference(out, references["clip->clip"])  # a sweep's unit is the run's unit


@pytest.fixture(scope="module")
def two_task_sweep(zygote, fault_tasks, tmp_path_factory) -> dict[str, dict]:
    """The results of an uninterrupted sweep of clip->clip and clip->owlv2."""
    out = tmp_path_factory.mktemp("sweep-reference")
    outcome = zygote.run(sweep_args(fault_tasks, out, "clip->clip", "clip->owlv2"))
    assert outcome.rc == 0, outcome.log
    return results_of(out)


@pytest.mark.parametrize(("fault", "reused"), [("result-done@1", 1), ("write:result:synced@2", 1), ("evaluated@1", 0)])
def test_a_sweep_killed_between_or_inside_tasks_resumes_to_the_same_results(zygote, fault_tasks, two_task_sweep, tmp_path, fault, reused):
    out = tmp_path / "runs"
    args = sweep_args(fault_tasks, out, "clip->clip", "clip->owlv2")
    killed = zygote.run(args, fault=fault)
    assert killed.rc == -9, killed.log
    assert_no_torn_files(out)
    resumed = zygote.run(args)
    assert resumed.rc == 0, resumed.log
    assert f"results: {2 - reused} computed, {reused} reused (stored)" in resumed.log, resumed.log
    assert results_of(out) == two_task_sweep
    assert not temp_files(out)


def test_two_sweeps_into_one_folder_at_once_compute_each_unit_once(zygote, fault_tasks, two_task_sweep, tmp_path):
    out = tmp_path / "runs"
    args = sweep_args(fault_tasks, out, "clip->clip", "clip->owlv2")
    hold = "lock:words@1=sleep1.5"  # whichever trains the words holds their lock a while
    a, b = zygote.run_parallel([(args, hold), (args, hold)])
    assert a.rc == 0 and b.rc == 0, a.log + b.log
    assert (a.log + b.log).count("saved trained words") == 1
    assert "waiting for another vwbench process" in a.log + b.log
    assert results_of(out) == two_task_sweep
    assert_no_torn_files(out)


# ---- Ctrl-C while waiting --------------------------------------------------------------------------


def test_ctrl_c_while_waiting_for_another_process_exits_130_with_one_line(zygote, fault_tasks, references, tmp_path):
    """The waiting process stops at once with one line; the lock holder is not disturbed."""
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    both = "lock:result@1=sleep2,lock:wait@1=interrupt"  # the first to lock sleeps; the other is interrupted while waiting
    a, b = zygote.run_parallel([(args, both), (args, both)])
    holder, waiter = (a, b) if a.rc == 0 else (b, a)
    assert holder.rc == 0, holder.log
    assert waiter.rc == 130, waiter.log
    assert "waiting for another vwbench process" in waiter.log and "Traceback" not in waiter.log
    assert interrupted_lines(waiter.log) == ["interrupted: nothing was saved yet"], waiter.log
    assert_matches_reference(out, references["clip->clip"])


# ---- files beside the units: samples, split files, analyses --------------------------------------


def test_a_run_killed_while_writing_its_samples_has_them_all_after_the_rerun(zygote, tiny_tasks, tmp_path):
    """Samples are written before the result, which marks the run done: a run killed among them
    has no result yet, so the rerun evaluates again and writes every sample (and no temp file stays)."""
    out = tmp_path / "runs"
    args = run_args(tiny_tasks, out, "clip->sd")
    killed = zygote.run(args, fault="write:samples:synced@2")  # killed after the first of three samples
    assert killed.rc == -9, killed.log
    assert list((out / "results").rglob("*.json")) == []
    (samples,) = (out / "results").rglob("*.samples")
    assert [p.name for p in samples.glob("*.png")] == ["circle.png"] and temp_files(samples)
    rerun = zygote.run(args)
    assert rerun.rc == 0 and "reusing trained words" in rerun.log, rerun.log
    assert single(out / "results", "*.json").with_suffix(".samples") == samples
    assert sorted(p.name for p in samples.iterdir()) == ["circle.png", "square.png", "triangle.png"]


def _prepare_args(coco_world) -> list[str]:  # noqa: F811
    tasks, data = coco_world
    return ["data", "prepare", "--dataset", "coco-tiny", "--root", str(data), "--tasks-dir", str(tasks), "--images-per-concept", "2"]


def test_data_prepare_killed_while_writing_keeps_the_old_split_file(zygote, coco_world):  # noqa: F811
    args = _prepare_args(coco_world)
    first = zygote.run(args)
    assert first.rc == 0, first.log
    split = coco_world[1] / "cocotiny" / "vwbench_split.json"
    before = split.read_bytes()
    for point in ("write:file-set:tmp@1", "write:file-set:rename@1"):
        assert zygote.run(args, fault=point).rc == -9
        assert split.read_bytes() == before  # the old file, whole
    again = zygote.run(args)
    assert again.rc == 0, again.log

    def timeless(raw: bytes) -> dict:  # when each annotation file's hash was taken differs between two prepares
        data = json.loads(raw)
        for facts in data["sources"].values():
            facts.pop("checked_ns")
        return data

    assert timeless(split.read_bytes()) == timeless(before)
    for tmp in split.parent.glob(".vwbench_split.json.*.tmp"):
        tmp.unlink()  # leftovers of the kills above must not reach other tests


def test_data_prepare_after_a_killed_prepare_leaves_no_temp_file(zygote, coco_world):  # noqa: F811
    args = _prepare_args(coco_world)
    folder = coco_world[1] / "cocotiny"
    try:
        assert zygote.run(args, fault="write:file-set:rename@1").rc == -9
        assert temp_files(folder)  # what the killed writer left
        again = zygote.run(args)
        assert again.rc == 0, again.log
        assert temp_files(folder) == []
    finally:
        for tmp in folder.glob(".vwbench_split.json.*.tmp"):
            tmp.unlink()


def test_analyze_after_a_killed_analyze_leaves_no_temp_file(zygote, fault_tasks, tmp_path):
    out = tmp_path / "runs"
    assert zygote.run(run_args(fault_tasks, out)).rc == 0
    result = single(out / "results", "*.json")
    args = ["analyze", "neighbors", "--result", str(result), "--device", "cpu", "--tasks-dir", str(fault_tasks)]
    assert zygote.run(args, fault="write:file-set:rename@1").rc == -9
    assert temp_files(result.parent)  # what the killed writer left
    again = zygote.run(args)
    assert again.rc == 0, again.log
    assert (result.parent / f"analysis-neighbors-{result.stem}.json").is_file()
    assert temp_files(result.parent) == []


# ---- a sandboxed submission when its supervisor is stopped ---------------------------------------


def _slow_submission(folder: Path) -> Path:
    """ref-lstsq whose fit() first sleeps a minute."""
    import shutil

    shutil.copytree(Path(__file__).resolve().parents[2] / "submissions" / "ref-lstsq", folder)
    code = (folder / "transfer.py").read_text()
    (folder / "transfer.py").write_text(code.replace("        # T = argmin", "        import time\n        time.sleep(60)\n        # T = argmin", 1))
    assert "time.sleep(60)" in (folder / "transfer.py").read_text()
    return folder


def _sandbox_children(parent: int) -> dict[int, str]:
    """Processes whose parent is ``parent`` and that run the sandbox's child script: pid -> its work folder."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid == parent and b"child.py" in cmdline:
            found[int(entry.name)] = cmdline.rstrip(b"\0").split(b"\0")[-1].decode()
    return found


def _stop_validate_in_the_sandbox(tmp_path: Path, sig: int) -> tuple[int, str, list[int], list[str]]:
    """Start `vwbench validate` on a slow submission, send ``sig`` once its sandboxed child runs;
    returns (exit code, stderr, the child's pids still alive 2 s later, its work folders still
    there). Leftover children are killed (by pid) and their folders removed before returning."""
    import os
    import shutil
    import time

    submission = _slow_submission(tmp_path / "slow-sub")
    proc = _spawn(["validate", str(submission)])
    children: dict[int, str] = {}
    try:
        end = time.monotonic() + 60
        while not children and time.monotonic() < end and proc.poll() is None:
            children = _sandbox_children(proc.pid)
            time.sleep(0.05)
        assert children, f"no sandboxed child appeared: {proc.communicate()[1] if proc.poll() is not None else ''}"
        proc.send_signal(sig)
        _, stderr = proc.communicate(timeout=60)
        time.sleep(2)
        still_alive = [pid for pid in children if alive(pid)]
        return proc.returncode, stderr, still_alive, [work for work in children.values() if Path(work).exists()]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid, work in children.items():
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
            if Path(work).name.startswith("vwbench-sub-"):
                shutil.rmtree(work, ignore_errors=True)  # the work folder a stopped vwbench left behind


def test_ctrl_c_of_validate_stops_the_sandboxed_submission(tmp_path):
    rc, stderr, alive, folders = _stop_validate_in_the_sandbox(tmp_path, signal.SIGINT)
    assert rc == 130 and "Traceback" not in stderr, stderr
    assert interrupted_lines(stderr) == ["interrupted: nothing was saved yet"], stderr
    assert alive == [] and folders == []


def test_sigterm_of_validate_stops_the_sandboxed_submission(tmp_path):
    rc, stderr, alive, folders = _stop_validate_in_the_sandbox(tmp_path, signal.SIGTERM)
    assert rc == 143 and "Traceback" not in stderr, stderr
    assert [line for line in stderr.splitlines() if line.startswith("terminated:")] == ["terminated: nothing was saved yet"], stderr
    assert alive == [], f"sandboxed submission still running after SIGTERM of vwbench: pids {alive}, work folders {folders}"
    assert folders == []


# ---- a nearly full disk ------------------------------------------------------------------------


def test_a_disk_with_room_for_the_run_but_not_its_feature_cache(zygote, fault_tasks, references, small_disk):  # noqa: F811
    import os
    import shutil

    from tests.faults.test_bad_data import assert_one_line_error

    out = small_disk / "runs"
    args = run_args(fault_tasks, out)
    stat = os.statvfs(small_disk)
    (small_disk / "filler").write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 100 * 1024))  # 100 KiB: room for the run, under the cache's reserve (128 KiB of 512)
    cached = zygote.run(args)
    assert "is nearly full, so frozen image features are not cached" in cached.log, cached.log
    assert_no_torn_files(out)
    shutil.rmtree(out / "features", ignore_errors=True)
    uncached = zygote.run([*args, "--no-feature-cache"])  # the same run without the cache fits
    assert uncached.rc == 0, uncached.log
    assert_matches_reference(out, references["clip->clip"])
    if cached.rc != 0:
        assert_one_line_error(cached, "No space left on device")  # one line, exit 2: right, but it need not have failed
    assert cached.rc == 0, cached.log


# ---- Ctrl-C of a sweep on the slurm executor (submitit's local mode) ------------------------------


def test_ctrl_c_of_a_slurm_local_sweep_is_one_line_without_traceback(fault_tasks, tmp_path):
    """Ctrl-C in a terminal signals the whole foreground process group: vwbench and the job
    processes it started."""
    import os
    import subprocess
    import sys
    import time

    from tests.faults.conftest import QUIET_ENV

    out = tmp_path / "runs"
    args = [*sweep_args(fault_tasks, out, "clip->clip"), "--executor", "slurm", "--slurm-local"]
    env = {**os.environ, **QUIET_ENV}
    env.pop("VWBENCH_FAULT", None)
    proc = subprocess.Popen([sys.executable, "-m", "vwbench.cli", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
                            start_new_session=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and proc.poll() is None and not any("submitit.local._local" in c for c in processes_in_group(proc.pid)):
            time.sleep(0.05)
        assert proc.poll() is None, proc.communicate()[1]
        time.sleep(0.3)  # the job's process is still importing torch
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        _, stderr = proc.communicate(timeout=60)
        time.sleep(1)
        assert proc.returncode == 130, stderr
        assert len(interrupted_lines(stderr)) == 1, stderr
        assert processes_in_group(proc.pid) == []  # the jobs were stopped too
        assert "Traceback" not in stderr, stderr
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # anything of the group still running
        except ProcessLookupError:
            pass


# ---- leftovers of a killed process do not block or confuse the next one ---------------------------


def test_planted_leftovers_of_a_killed_run_do_not_confuse_the_next_run(zygote, fault_tasks, references, tmp_path):
    """A torn temp file beside the result and the words, a train-state temp, and lock files with
    stray content (as a killed process on another machine could leave): the run computes, removes
    the temps, and gives the reference numbers."""
    ref = references["clip->clip"]
    out = tmp_path / "runs"
    result, words = out / ref.result_name, out / ref.words_name
    planted = [
        result.with_name(f".{result.name}.x1y2z3.tmp"),
        words.with_name(f".{words.name}.x1y2z3.tmp"),
        words.with_name(f".{words.stem}.trainstate.x1y2z3.tmp"),
    ]
    for tmp in planted:
        tmp.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(b'{"torn": ')
    probe = tmp_path / "probe"  # the same run elsewhere, to learn its lock files' names
    assert zygote.run(run_args(fault_tasks, probe)).rc == 0
    locks = sorted(p.name for p in (probe / ".locks").iterdir())
    assert len(locks) == 2
    (out / ".locks").mkdir(parents=True)
    for name in locks:
        (out / ".locks" / name).write_text("12345 stale\n")
    outcome = zygote.run(run_args(fault_tasks, out))
    assert outcome.rc == 0, outcome.log
    assert "waiting" not in outcome.log
    assert_resumed_as_expected(outcome.log, "fresh")
    assert [p for p in planted if p.exists()] == []
    assert_matches_reference(out, ref)


def test_a_leaderboard_killed_between_its_renames_is_whole_after_the_next_run(zygote, tmp_path, references, fault_tasks):
    """`vwbench leaderboard` killed (SIGKILL) after renaming one of its three files: a mixed set with
    backups and the lock beside it; the next run leaves exactly the set a fresh run writes."""
    runs = tmp_path / "runs"
    assert zygote.run(run_args(fault_tasks, runs)).rc == 0
    assert zygote.run(run_args(fault_tasks, runs, "owlv2->clip")).rc == 0
    board, fresh = tmp_path / "board", tmp_path / "fresh"
    args = ["leaderboard", "--results", str(runs / "results"), "--name", "b"]
    assert zygote.run([*args, "--out", str(board)]).rc == 0
    (runs / "results" / references["owlv2->clip"].result_name.split("/", 1)[1]).unlink()  # the next board differs
    killed = zygote.run([*args, "--out", str(board)], fault="write:file-set:rename@2")
    assert killed.rc == -9, killed.log
    assert any(p.name.startswith(".") for p in board.iterdir())  # what the killed writer left
    again = zygote.run([*args, "--out", str(board)])
    assert again.rc == 0, again.log
    assert zygote.run([*args, "--out", str(fresh)]).rc == 0
    assert sorted(p.name for p in board.iterdir()) == ["README.md", "index.html", "leaderboard.json"]

    def stable(text: str) -> str:  # the two sets were written seconds apart
        text = "\n".join(line for line in text.splitlines() if "generated" not in line)
        return re.sub(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?\+00:00", "<time>", text)

    for name in ("README.md", "index.html", "leaderboard.json"):
        assert stable((board / name).read_text()) == stable((fresh / name).read_text()), name
