"""Mutation-testing round 13 pin of SlurmExecutor.close: the literal "%j" folder is removed when
empty, and left (no error) when something put files in it."""

from __future__ import annotations

import pytest

from vwbench.executors import ExecutorSettings, make_executor


def test_close_removes_an_empty_pattern_folder_and_leaves_one_holding_files(tmp_path):
    pytest.importorskip("submitit", reason="submitit is not installed (pip install 'vwbench[scale]')")
    executor = make_executor("slurm", ExecutorSettings(slurm_cluster="debug", log_dir=tmp_path, threads=1))
    pattern = tmp_path / "slurm" / "%j"
    pattern.mkdir(parents=True, exist_ok=True)
    (pattern / "kept.log").write_text("x")
    executor.close()  # not empty: left as it is
    assert (pattern / "kept.log").exists()
    (pattern / "kept.log").unlink()
    executor.close()
    assert not pattern.exists()
    executor.close()  # absent: nothing to do
