"""A full disk and a read-only output folder: one line, exit code 2, and everything saved before
is kept and reused by the next run.

The fault hook raises the real ``OSError`` (ENOSPC, EROFS) at exact points of a run; where the
tests run as root they also mount a tiny tmpfs and fill it, or remount it read-only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.faults.conftest import run_args, single
from tests.faults.test_bad_data import assert_one_line_error
from tests.faults.test_kill_resume import assert_matches_reference, assert_no_torn_files, assert_resumed_as_expected


def test_full_disk_when_writing_the_result_keeps_the_words(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    full = zygote.run(args, fault="write:result:tmp@1=ENOSPC")
    assert_one_line_error(full, "No space left on device", "free space")
    assert not list(out.rglob("*.json")) and not list(out.rglob(".*.tmp"))
    assert_no_torn_files(out)
    rerun = zygote.run(args)
    assert rerun.rc == 0
    assert_resumed_as_expected(rerun.log, "reuse-words")
    assert_matches_reference(out, references["clip->clip"])


def test_full_disk_during_training_keeps_the_last_checkpoint(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    full = zygote.run(args, fault="write:train-state:tmp@3=ENOSPC")
    assert_one_line_error(full, "No space left on device", ".trainstate")
    rerun = zygote.run(args)
    assert rerun.rc == 0
    assert_resumed_as_expected(rerun.log, 2)
    assert_matches_reference(out, references["clip->clip"])


def test_full_disk_when_saving_the_words(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    full = zygote.run(args, fault="write:words:synced@1=ENOSPC")
    assert_one_line_error(full, "No space left on device", ".safetensors")
    assert not list(out.rglob(".*.tmp"))
    rerun = zygote.run(args)
    assert rerun.rc == 0
    assert_resumed_as_expected(rerun.log, 5)
    assert_matches_reference(out, references["clip->clip"])


def test_read_only_output_folder(zygote, fault_tasks, tmp_path):
    outcome = zygote.run(run_args(fault_tasks, tmp_path / "runs"), fault="lock:create@1=EROFS")
    assert_one_line_error(outcome, "Read-only file system", "not writable", "--out")


def _mount_tmpfs(where: Path, size: str) -> bool:
    if os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    where.mkdir(parents=True, exist_ok=True)
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True).returncode == 0


@pytest.fixture
def small_disk(tmp_path):
    disk = tmp_path / "disk"
    if not _mount_tmpfs(disk, "512k"):
        pytest.skip("mounting a tmpfs needs root")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def test_a_real_full_disk_then_a_real_read_only_disk(zygote, fault_tasks, references, small_disk):
    out = small_disk / "runs"
    args = run_args(fault_tasks, out)
    filler = small_disk / "filler"
    stat = os.statvfs(small_disk)
    filler.write_bytes(b"\0" * (stat.f_bavail * stat.f_frsize - 8192))  # leave two pages
    full = zygote.run(args)
    assert_one_line_error(full, "No space left on device")
    assert_no_torn_files(out)
    filler.unlink()
    rerun = zygote.run(args)
    assert rerun.rc == 0, rerun.log
    assert_matches_reference(out, references["clip->clip"])

    subprocess.run(["mount", "-o", "remount,ro", str(small_disk)], check=True)
    again = zygote.run(args)  # finished units are read without taking locks: a read-only copy still answers
    assert again.rc == 0 and "reusing the stored result" in again.log, again.log
    other_seed = zygote.run([*args, "--seed", "3"])
    assert_one_line_error(other_seed, "Read-only file system", "not writable")
    assert single(out / "results", "*.json")
