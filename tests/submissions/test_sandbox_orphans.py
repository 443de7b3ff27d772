"""Work folders of sandboxes whose vwbench process was killed (``kill -9`` leaves no chance to
clean up) are removed by the next sandbox; live ones and foreign names are left."""

from __future__ import annotations

import os
import subprocess
import sys

from vwbench.submissions.sandbox import WORK_PREFIX, remove_orphaned_work_folders


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_only_the_folders_of_dead_processes_are_removed(tmp_path):
    dead = tmp_path / f"{WORK_PREFIX}{_dead_pid()}-abc123"
    alive = tmp_path / f"{WORK_PREFIX}{os.getpid()}-def456"
    old_style = tmp_path / f"{WORK_PREFIX}xyz789"  # no pid in the name: not known to be orphaned
    other = tmp_path / "something-else-1-2"
    for folder in (dead, alive, old_style, other):
        (folder / "in").mkdir(parents=True)
        (folder / "in" / "request.json").write_text("{}")
    a_file = tmp_path / f"{WORK_PREFIX}{_dead_pid()}-file"
    a_file.write_text("not a folder")
    assert remove_orphaned_work_folders(tmp_path) == 1
    assert not dead.exists()
    assert alive.is_dir() and old_style.is_dir() and other.is_dir() and a_file.is_file()


def test_a_missing_temp_folder_is_nothing_to_clean(tmp_path):
    assert remove_orphaned_work_folders(tmp_path / "missing") == 0
