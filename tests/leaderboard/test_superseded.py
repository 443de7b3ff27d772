"""One result per dataset, task and method: the others are superseded, never silently. The board
says which file replaced each and why, lists them in README.md and index.html, and warns where the
two are different experiments (another seed or settings, another submission under one name)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.cli import app

from .test_bad_input import one_line_error
from .test_leaderboard import make_board

REPO = Path(__file__).resolve().parents[2]
COMMITTED_BOARDS = [REPO / "leaderboards" / "mini" / "leaderboard.json", REPO / "leaderboards" / "mini" / "studies" / "leaderboard.json"]
NEWER = "2999-01-01T00:00:00+00:00"


def result_of(results: Path, method: str, pair: str = "clip-to-owlv2") -> Path:
    return next(p for p in sorted(results.rglob(f"{method}-*.json")) if pair in str(p))


def variant(original: Path, name: str, **changes) -> str:
    """A copy of a result file beside it, with ``changes`` (``provenance`` entries merged); its
    path relative to the results folder's ``synth-tiny/..``."""
    payload = json.loads(original.read_text())
    provenance = {**payload["provenance"], **changes.pop("provenance", {})}
    (original.parent / name).write_text(json.dumps({**payload, **changes, "provenance": provenance}))
    return str((original.parent / name).relative_to(original.parents[2]))


def as_submission(path: Path, sha: str, created: str | None = None) -> None:
    """Turn a result into one of a submitted method named ``my-method`` whose files hash to ``sha``."""
    payload = json.loads(path.read_text())
    payload["transfer"] = "my-method"
    payload["transfer_params"] = {**payload["transfer_params"], "submission": {"kind": "transfer-method", "name": "my-method", "path": "submissions/my-method", "sha256": sha}}
    if created:
        payload["provenance"]["created"] = created
    path.write_text(json.dumps(payload))


@pytest.fixture
def mixed_results(tiny_results, tmp_path) -> tuple[Path, dict[str, str]]:
    """The tiny results plus runs that supersede others: a newer lstsq run with another seed, a
    newer procrustes run with another learning rate, a shorter anchor run (no warning: only older
    or shorter), and two submissions named my-method with different files."""
    results = tmp_path / "results"
    shutil.copytree(tiny_results / "results", results)
    rel = lambda p: str(p.relative_to(results))  # noqa: E731
    lstsq, procrustes, anchor = (result_of(results, m) for m in ("lstsq", "procrustes", "anchor"))
    settings = json.loads(procrustes.read_text())["provenance"]["settings"]
    settings["hyperparameters"]["lr"] *= 10
    files = {
        "lstsq": rel(lstsq), "lstsq-seed7": variant(lstsq, "lstsq-seed7.json", seed=7, provenance={"created": NEWER}),
        "procrustes": rel(procrustes), "procrustes-lr": variant(procrustes, "procrustes-lr.json", provenance={"created": NEWER, "settings": settings}),
        "anchor": rel(anchor), "anchor-short": variant(anchor, "anchor-short.json", steps=1, provenance={"created": NEWER}),
    }
    ridge = result_of(results, "ridge")
    files["method-b"] = variant(ridge, "my-method-b.json")
    as_submission(ridge, "a" * 64)
    as_submission(results / files["method-b"], "b" * 64, created=NEWER)
    files["method-a"] = rel(ridge)
    return results, files


def test_superseded_results_say_by_which_file_and_why(mixed_results, tmp_path) -> None:
    results, files = mixed_results
    out = tmp_path / "board"
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(results), "--out", str(out)])
    assert res.exit_code == 0, res.output
    board = json.loads((out / "leaderboard.json").read_text())
    by_file = {s["file"]: s for s in board["superseded_by"]}
    assert board["superseded"] == sorted(by_file)  # the names, as boards before superseded_by held them
    assert set(by_file) == {files["lstsq"], files["procrustes"], files["anchor-short"], files["method-a"]}
    expected = {  # superseded: (kept, what the why says, what differs)
        files["lstsq"]: (files["lstsq-seed7"], "the kept run is newer", ["seed"]),
        files["procrustes"]: (files["procrustes-lr"], "hyperparameters.lr", ["settings"]),
        files["anchor-short"]: (files["anchor"], "the kept run has more steps (2 vs 1)", []),
        files["method-a"]: (files["method-b"], "sha256 bbbbbbbbbbbb (kept) vs aaaaaaaaaaaa", ["submission"]),
    }
    for file, (kept, why, differs) in expected.items():
        record = by_file[file]
        assert record["kept"] == kept and why in record["why"] and record["differs"] == differs, record
    assert "seed 7 (kept) vs 0" in by_file[files["lstsq"]]["why"]
    readme, page = (out / "README.md").read_text(), (out / "index.html").read_text()
    assert "## Superseded results" in readme and "<h2>Superseded results</h2>" in page
    assert "the most steps, then the most trials, then the newest" in readme  # the rule, where users read it
    for file in by_file:
        assert file.replace("_", "\\_") in readme and file in page


def test_a_superseded_result_of_another_experiment_is_a_warning(mixed_results, tmp_path) -> None:
    """One stderr line per unit whose kept and superseded results differ in seed, settings or
    submitted file; none where a run was only shorter or older."""
    results, files = mixed_results
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(results), "--out", str(tmp_path / "board")])
    assert res.exit_code == 0, res.output
    assert "4 superseded by another run of their method (listed in the board)" in res.stdout
    warnings = [line for line in res.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 3, res.stderr
    unit = {w.split(":", 2)[1].strip(): w for w in warnings}
    assert set(unit) == {"synth-tiny clip->owlv2 lstsq", "synth-tiny clip->owlv2 procrustes", "synth-tiny clip->owlv2 my-method"}
    assert "seeds differ" in unit["synth-tiny clip->owlv2 lstsq"] and "mixes settings" in unit["synth-tiny clip->owlv2 lstsq"]
    assert "settings differ" in unit["synth-tiny clip->owlv2 procrustes"] and "remove the run you do not want from --results" in unit["synth-tiny clip->owlv2 procrustes"]
    clash = unit["synth-tiny clip->owlv2 my-method"]
    assert "different submissions under the one name 'my-method'" in clash and "submission.yaml" in clash and files["method-a"] in clash


def test_boards_written_before_superseded_by_still_read_and_render(tmp_path) -> None:
    from vwbench.leaderboard import render_leaderboard
    from vwbench.leaderboard.build import read_leaderboard
    from vwbench.leaderboard.collect import supersede_warnings

    for path in (p for p in COMMITTED_BOARDS if p.is_file()):
        board = read_leaderboard(path, str(path))
        board.pop("superseded_by", None)  # as written before the field existed (a regenerated board has it)
        assert set(render_leaderboard(board)) == {"leaderboard.json", "README.md", "index.html"}
        assert supersede_warnings(board.get("superseded_by") or []) == []
    old = json.loads(COMMITTED_BOARDS[0].read_text()) if COMMITTED_BOARDS[0].is_file() else pytest.skip("leaderboards/mini has not been built")
    old.pop("superseded_by", None)
    old["superseded"] = ["synth-voc/owlv2-to-clip/lstsq-old.json"]
    files = render_leaderboard(old)
    assert "## Superseded results" in files["README.md"].decode() and "lstsq-old.json</code>" in files["index.html"].decode()


def test_check_from_another_folder_names_the_entry_and_takes_root(tiny_tasks, tmp_path, monkeypatch) -> None:
    """A baseline stores a submission's path as `vwbench run --transfer` was given it (relative to
    where the runs were made): run from elsewhere, the error names the check entry and the folder
    the path is read from, before anything is written; --root gives the runs' folder."""
    project = tmp_path / "project"
    shutil.copytree(REPO / "submissions" / "ref-lstsq", project / "submissions" / "my-method")
    monkeypatch.chdir(project)
    args = ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", "runs", "--device", "cpu", "--threads", "1"]
    res = CliRunner().invoke(app, [*args, "--transfer", "submissions/my-method"])
    assert res.exit_code == 0, res.output
    board = make_board(project / "runs" / "results", project / "board", "--check", "synth-tiny:*:ref-lstsq")
    assert board["check"]["entries"][0]["transfer_path"] == "submissions/my-method"
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    baseline = project / "board" / "leaderboard.json"
    check = ["check", "--baseline", str(baseline), "--tasks-dir", str(tiny_tasks)]
    res = CliRunner().invoke(app, [*check, "--out", "out"])
    one_line_error(res, "check entry 1/1: synth-tiny clip->owlv2 ref-lstsq", "submissions/my-method", f"relative to the current folder ({elsewhere})",
                   "if it was deleted or renamed, restore it", "made in another folder, run `vwbench check` from there", "--root")
    assert "--transfer" not in str(res.exception) and not (elsewhere / "out").exists()
    one_line_error(CliRunner().invoke(app, [*check, "--root", "no-such-folder"]), "--root no-such-folder: not a folder")
    res = CliRunner().invoke(app, [*check, "--root", str(project)])
    assert res.exit_code == 0, res.output
    assert "ok: 1 value(s) within tolerance" in res.stdout


def test_a_check_spec_given_a_submission_path_says_it_matches_names(mixed_results, tmp_path) -> None:
    results, _ = mixed_results
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(results), "--out", str(tmp_path / "b"), "--check", "synth-tiny:*:submissions/my-method"])
    message = one_line_error(res, "matches no result", "method name (its `transfer`, e.g. 'my-method'", "the submission at 'submissions/my-method' ran as my-method")
    assert "names here: anchor, identity, knn, lstsq, my-method, procrustes, random" in message
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(results), "--out", str(tmp_path / "b"), "--check", "synth-tiny:sd->*:lstsq"])
    one_line_error(res, "matches no result", "has task 'sd->*'", "tasks: clip->clip, clip->owlv2, owlv2->clip, owlv2->owlv2")
    assert not (tmp_path / "b").exists()
