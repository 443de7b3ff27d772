"""The sandbox's ``out/error.json`` is written in the submission's own work folder, so the
submission can replace it (then exit with the submission-error code): deeply nested JSON or a
non-object there is ignored, and the failure is a one-line SubmissionFailure, never a traceback
(a bare ``json.loads`` let a RecursionError or an AttributeError escape)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vwbench.submissions.sandbox import Limits, SubmissionFailure, run_transfer_submission

from .helpers import hostile, planted, transfer_folder

FAST = Limits(time_limit_s=20, memory_mb=1024, output_mb=4)


def _run(folder: Path):
    source, target, tokens = planted()
    return run_transfer_submission(folder, "transfer.py", "Transfer", source, target, tokens, source[:5], [""] * 5, FAST)


@pytest.mark.parametrize("content", ["[" * 5000, "[1, 2]"], ids=["nested-too-deep", "a-list"])
def test_a_replaced_error_file_is_that_submissions_failure_not_a_traceback(tmp_path: Path, content: str) -> None:
    in_fit = f"""
    with open(os.path.join("..", "out", "error.json"), "w") as f:
        f.write({content!r})
    raise SystemExit(3)
    """
    folder = transfer_folder(tmp_path, hostile("import os", in_fit))
    with pytest.raises(SubmissionFailure):
        _run(folder)
