"""Mutation-testing round 13 pin: `vwbench run`'s "reusing the stored result" line names the
commit that made the result when it is not this checkout's (the words' line has its own test)."""

from __future__ import annotations

from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.results import provenance

from tests.submissions.test_run_submissions import run_args


def test_a_reused_result_of_another_commit_says_so(tiny_tasks, tmp_path, monkeypatch) -> None:
    import vwbench.pipeline_steps as steps

    out = tmp_path / "runs"
    monkeypatch.setattr(steps, "git_commit", lambda: "a" * 40)  # what the result records
    monkeypatch.setattr(provenance, "git_commit", lambda: "a" * 40)
    first = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->clip", "--seed", "6"))
    assert first.exit_code == 0, first.output
    same = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->clip", "--seed", "6"))
    line = next(line for line in same.output.splitlines() if line.startswith("reusing the stored result"))
    assert line.endswith(".json"), line  # the same clean commit: nothing added
    monkeypatch.setattr(provenance, "git_commit", lambda: "b" * 40)
    again = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->clip", "--seed", "6"))
    assert again.exit_code == 0, again.output
    line = next(line for line in again.output.splitlines() if line.startswith("reusing the stored result"))
    assert "(made at commit aaaaaaaaaaaa, this checkout is bbbbbbbbbbbb:" in line, line


def test_a_clean_checkout_with_sha256_commit_ids_reusing_its_own_result_adds_nothing(monkeypatch) -> None:
    from vwbench.results import provenance

    monkeypatch.setattr(provenance, "git_commit", lambda: "b" * 64)
    assert provenance.made_elsewhere("b" * 64) == ""
    assert "made at commit aaaaaaaaaaaa-dirty, this checkout is bbbbbbbbbbbb:" in provenance.made_elsewhere("a" * 64 + "-dirty")
