"""What a contributor's walk through the submission flow found: a moved submission that `vwbench
check` could not find, a name the boards use for their ceiling rows, embeddings runs of two seeds
in one file, training options that --embeddings ignored, uneven trials, a transposed map blamed on
its bias, and a leaderboard written over a project's README."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.results import read_result
from vwbench.submissions.validate import validate
from vwbench.transfer import get_transfer

from .helpers import embeddings, linear_map, transfer_folder, LSTSQ_BODY
from .test_run_submissions import load_model, results_of, run_args, tiny_clip_words


def _lstsq_map(tiny_tasks: Path, path: Path) -> Path:
    clip, owl = load_model(tiny_tasks, "clip"), load_model(tiny_tasks, "owlv2")
    lstsq = get_transfer("lstsq").fit(clip.vocabulary(), owl.vocabulary())
    return linear_map(path, lstsq.T.T.contiguous(), source_vocab_hash=clip.vocabulary().hash(), target_vocab_hash=owl.vocabulary().hash())


def test_a_reused_result_records_where_the_submission_now_is_and_check_finds_it(tiny_tasks, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # paths relative to the project folder, as a check subset needs
    Path("draft").mkdir()
    first = _lstsq_map(tiny_tasks, Path("draft") / "my-map.safetensors")
    out = tmp_path / "runs"
    assert CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--transfer", str(first))).exit_code == 0
    final = Path("final") / "my-map.safetensors"
    final.parent.mkdir()
    shutil.move(first, final)
    again = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--transfer", str(final)))
    assert again.exit_code == 0, again.output
    assert "reusing the stored result" in again.output and f"moved from {first} to {final}" in again.output
    stored = read_result(results_of(out)["my-map"])
    assert stored.transfer_params["submission"]["path"] == str(final)
    board = tmp_path / "board"
    assert CliRunner().invoke(app, ["leaderboard", "--results", str(out / "results"), "--out", str(board), "--check", "*:*:my-map"]).exit_code == 0
    (entry,) = json.loads((board / "leaderboard.json").read_text())["check"]["entries"]
    assert entry["transfer_path"] == str(final)
    check = CliRunner().invoke(app, ["check", "--baseline", str(board / "leaderboard.json"), "--tasks-dir", str(tiny_tasks)])
    assert check.exit_code == 0 and "ok: 1 value(s) within tolerance" in check.output, check.output
    # a run from the same path reuses the result without rewriting it
    before = results_of(out)["my-map"].read_bytes()
    same = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--transfer", str(final)))
    assert same.exit_code == 0 and "moved from" not in same.output
    assert results_of(out)["my-map"].read_bytes() == before


def test_embeddings_runs_of_two_seeds_are_two_results_and_training_options_are_refused(tiny_tasks, tmp_path) -> None:
    path, _, _ = tiny_clip_words(tiny_tasks, tmp_path / "words.safetensors", shape=(2, 3))  # 2 trials of 3 vectors
    out = tmp_path / "runs"
    for seed in ("0", "3"):
        res = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--embeddings", str(path), "--seed", seed))
        assert res.exit_code == 0, res.output
        assert "ignoring" not in res.output  # not another seed's result, computed again
    stored = [read_result(p) for p in (out / "results").rglob("*.json")]
    assert sorted(r.seed for r in stored) == [0, 3]
    assert {r.n_trials for r in stored} == {2}
    assert {r.provenance.settings["hyperparameters"]["n_vectors"] for r in stored} == {3}  # the file's words, not the task's 4
    for extra, named in ((["--steps", "5"], "--steps applies"), (["--trials", "2"], "--trials applies"), (["--steps", "5", "--trials", "2"], "--steps/--trials apply")):
        res = CliRunner().invoke(app, run_args(tiny_tasks, tmp_path / "o", "clip->owlv2", "--embeddings", str(path), *extra))
        assert isinstance(res.exception, UserError), res.output
        message = str(res.exception)
        assert message.startswith(f"{named} to word training") and "submitted --embeddings are not trained" in message and "\n" not in message
    assert not (tmp_path / "o").exists()


def test_a_stored_result_of_another_run_is_named_once(tiny_tasks, tmp_path) -> None:
    out = tmp_path / "runs"
    assert CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--transfer", "ridge")).exit_code == 0
    (path,) = (out / "results").rglob("*.json")
    data = json.loads(path.read_text())
    data["seed"] = 7  # the key's file now holds another run's result
    path.write_text(json.dumps(data))
    res = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--transfer", "ridge"))
    assert res.exit_code == 0, res.output
    assert res.output.count("it holds another run's result") == 1, res.output


def test_uneven_trials_per_concept_are_a_validation_problem(tmp_path) -> None:
    words = {"circle": torch.randn(2, 4, 8), "square": torch.randn(4, 8), "triangle": torch.randn(1, 4, 8)}
    report = validate(embeddings(tmp_path / "e.safetensors", words))
    assert not report.ok
    assert any("concepts differ in their number of words (circle: 2, square: 1, triangle: 1)" in p for p in report.problems), report.problems
    even = {"circle": torch.randn(4, 8), "square": torch.randn(1, 4, 8)}
    assert validate(embeddings(tmp_path / "f.safetensors", even)).ok  # [n, d] is one trial, as [1, n, d]


def test_the_boards_ceiling_name_is_reserved(tmp_path) -> None:
    name = "in-domain"
    folder = transfer_folder(tmp_path, LSTSQ_BODY, name=name)
    report = validate(folder)
    assert not report.ok and any("the leaderboards' name for in-domain words" in p for p in report.problems), report.problems
    lm = validate(linear_map(tmp_path / "m.safetensors", torch.randn(6, 8), name=name))
    assert not lm.ok and any("pick another name" in p for p in lm.problems)


def test_a_bad_name_is_explained_in_words_not_as_a_pattern(tmp_path) -> None:
    report = validate(transfer_folder(tmp_path, LSTSQ_BODY, name="my method!"))
    text = "\n".join(report.problems)
    assert "a submission name is 1-64 characters: letters, digits" in text and "should match pattern" not in text, text
    # a final newline is refused too (a regular expression's $ matches before it)
    (tmp_path / "nl").mkdir()
    assert not validate(transfer_folder(tmp_path / "nl", LSTSQ_BODY, name="my-method\n")).ok
    assert not validate(linear_map(tmp_path / "m.safetensors", torch.randn(6, 8), name="my-map\n")).ok


def test_a_transposed_weight_is_named_as_such_not_blamed_on_the_bias(tmp_path) -> None:
    report = validate(linear_map(tmp_path / "m.safetensors", torch.randn(8, 6), torch.randn(6)))
    assert report.problems == [
        "'weight' has shape [8, 6] and 'bias' [6]: a bias has d_target entries, so the weight looks transposed; "
        "save weight as [d_target, d_source] = [6, 8] (weight.T)"
    ]
    square = validate(linear_map(tmp_path / "s.safetensors", torch.randn(6, 6), torch.randn(5)))
    assert square.problems == ["'bias' has shape [5], expected [6]"]


def test_a_leaderboard_is_not_written_over_another_readme(tiny_tasks, tmp_path) -> None:
    out = tmp_path / "runs"
    assert CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--transfer", "ridge")).exit_code == 0
    project = tmp_path / "project"
    project.mkdir()
    (project / "README.md").write_text("# My project\n")
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(out / "results"), "--out", str(project)])
    assert isinstance(res.exception, UserError) and "holds README.md but no leaderboard.json" in str(res.exception), res.output
    assert (project / "README.md").read_text() == "# My project\n" and sorted(p.name for p in project.iterdir()) == ["README.md"]
    # a folder of an earlier leaderboard is written again
    board = tmp_path / "board"
    for _ in range(2):
        assert CliRunner().invoke(app, ["leaderboard", "--results", str(out / "results"), "--out", str(board)]).exit_code == 0
    from vwbench.leaderboard import check_leaderboard_out

    (tmp_path / "site").mkdir()
    (tmp_path / "site" / "index.html").write_text("<html></html>")
    with pytest.raises(UserError, match="holds index.html but no leaderboard.json"):
        check_leaderboard_out(tmp_path / "site")


def test_an_unknown_transfer_name_says_a_submission_is_given_by_its_path() -> None:
    with pytest.raises(UserError, match=r"a submission is given by its path, e\.g\. \./my-method\)"):
        get_transfer("my-method")


def test_the_rename_advice_for_two_submissions_of_one_name_covers_files_too() -> None:
    from vwbench.leaderboard.collect import supersede_warnings

    (line,) = supersede_warnings([{"dataset": "d", "task": "clip->owlv2", "transfer": "my-method", "kept": "a.json", "file": "b.json", "differs": ["submission"]}])
    assert "`name:` in a method's submission.yaml, `name` in a linear map's or embeddings file's safetensors metadata" in line


def test_an_unknown_key_names_the_closest_known_one(tmp_path) -> None:
    assert validate(linear_map(tmp_path / "m.safetensors", torch.randn(6, 8), author="A. Tester")).problems == [
        "metadata author: unknown field; did you mean 'authors'?"
    ]
    (problem,) = validate(linear_map(tmp_path / "n.safetensors", torch.randn(6, 8), zzz="1")).problems
    assert problem.startswith("metadata zzz: unknown field (known: name, ") and "source_vocab_hash" in problem
    manifest = validate(transfer_folder(tmp_path, LSTSQ_BODY, klass="Transfer")).problems
    assert manifest == ["submission.yaml klass: unknown field; did you mean 'class'?"]  # the key as written, not the field's name


def test_a_map_that_cannot_take_the_init_words_it_asked_for_names_the_call(tmp_path) -> None:
    from vwbench.submissions.sandbox import Limits, SubmissionFailure, run_transfer_submission

    from .helpers import planted

    body = LSTSQ_BODY.replace("class Transfer:", "class Transfer:\n    uses_init_words = True\n")
    folder = transfer_folder(tmp_path, body)
    source, target, tokens = planted()
    with pytest.raises(SubmissionFailure, match=r"map\(\): TypeError: uses_init_words = True, so map is called as map\(vectors, init_words\), but it is map\(vectors\)"):
        run_transfer_submission(folder, "transfer.py", "Transfer", source, target, tokens, source[:5], [""] * 5, Limits(time_limit_s=30))


def test_a_board_written_into_its_results_folder_does_not_list_itself_as_skipped(tiny_tasks, tmp_path) -> None:
    out = tmp_path / "runs"
    assert CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--transfer", "ridge")).exit_code == 0
    results = out / "results"
    for _ in range(2):
        res = CliRunner().invoke(app, ["leaderboard", "--results", str(results), "--out", str(results)])
        assert res.exit_code == 0, res.output
    assert "skipped" not in res.output
    assert json.loads((results / "leaderboard.json").read_text())["skipped"] == []


def test_moved_embeddings_are_recorded_as_the_words_file_too(tiny_tasks, tmp_path) -> None:
    first, _, _ = tiny_clip_words(tiny_tasks, tmp_path / "words.safetensors", seed=1)
    out = tmp_path / "runs"
    assert CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--embeddings", str(first))).exit_code == 0
    final = tmp_path / "kept.safetensors"
    shutil.move(first, final)
    res = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--embeddings", str(final)))
    assert res.exit_code == 0 and "the submitted words moved from" in res.output, res.output
    stored = read_result(results_of(out)["my-words+lstsq"])
    assert stored.transfer_params["embeddings"]["path"] == str(final) and stored.provenance.words_file == str(final)
    analyze = ["analyze", "neighbors", "--result", str(results_of(out)["my-words+lstsq"]), "--k", "1", "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", str(tmp_path / "nb")]
    done = CliRunner().invoke(app, analyze)
    assert done.exit_code == 0, done.output


def test_a_moved_submission_reused_from_a_read_only_results_copy_still_answers(tmp_path, monkeypatch) -> None:
    import vwbench.results.atomic as atomic
    from vwbench.results.schema import RunResult
    from vwbench.runner import refresh_submitted_paths

    stored = tmp_path / "r.json"
    stored.write_text("{}")
    result = RunResult.model_construct(transfer_params={"submission": {"path": "old/m.safetensors", "sha256": "x"}}, provenance=None)

    def read_only(path, payload, **kwargs):
        raise UserError(f"cannot write {path}: Read-only file system; choose a writable output directory with --out")

    monkeypatch.setattr(atomic, "atomic_write_json", read_only)
    said: list[str] = []
    updated = refresh_submitted_paths(result, stored, {"submission": "new/m.safetensors"}, said.append)
    assert updated.transfer_params["submission"]["path"] == "new/m.safetensors" and stored.read_text() == "{}"
    assert said[-1] == f"could not record the new path (cannot write {stored}: Read-only file system); the stored result keeps the old one"
