"""What a user's walk through leaderboards and `vwbench check` found: a submission run from an
absolute path that `check` re-ran from someone else's checkout, a baseline of 2-thread runs
re-run with 1 thread (and a change too small to read), tables that ranked runs of different steps
without a word, a regenerated board that dropped its check subset silently, `check`'s exit 2
missing from README, and check specs that did not take the names `vwbench run` takes."""

from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest

from tests.test_cli_pins import _main
from vwbench.errors import UserError

from .test_check import SUBSET
from .test_leaderboard import make_board

REPO = Path(__file__).resolve().parents[2]


def _fake_runs(monkeypatch, values: list) -> list:
    """``run_task`` answers the given values in turn (an exception is raised); returns the options it saw."""
    import vwbench.runner as runner

    seen: list = []

    def run_task(spec, options, reporter=None):
        seen.append(options)
        value = values[len(seen) - 1]
        if isinstance(value, Exception):
            raise value
        return SimpleNamespace(result=SimpleNamespace(value=value))

    monkeypatch.setattr(runner, "run_task", run_task)
    return seen


def _baseline(tmp_path: Path, board: dict, entries: list[dict], name: str = "baseline.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps({**board, "check": {**board["check"], "entries": entries}}))
    return path


def _one_line_error(code: int, err: str, *fragments: str) -> str:
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    assert all(f in lines[0] for f in fragments), lines[0]
    return lines[0]


@pytest.fixture(scope="module")
def pin_board(tiny_results, tmp_path_factory) -> dict:
    """A leaderboard whose check subset is clip->owlv2 with lstsq, tolerance 0.01."""
    return make_board(tiny_results / "results", tmp_path_factory.mktemp("walk") / "board", "--check", SUBSET[0], "--tolerance", "0.01")


def _copy_results(tiny_results: Path, tmp_path: Path) -> Path:
    results = tmp_path / "results"
    shutil.copytree(tiny_results / "results", results)
    return results


def _result(results: Path, method: str, pair: str = "clip-to-owlv2") -> Path:
    return next(p for p in sorted(results.rglob(f"{method}-*.json")) if pair in str(p))


def _edit(path: Path, **changes) -> None:
    payload = json.loads(path.read_text())
    machine = changes.pop("machine", None)
    if machine:
        payload["provenance"]["machine"] = {**payload["provenance"]["machine"], **machine}
    path.write_text(json.dumps({**payload, **changes}))


# ---- 1. absolute submission paths ------------------------------------------------------------------


def test_leaderboard_check_refuses_a_submission_run_from_an_absolute_path(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    project = tmp_path / "project"
    shutil.copytree(REPO / "submissions" / "ref-lstsq", project / "submissions" / "my-method")
    monkeypatch.chdir(project)
    run = ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks, "--out", "runs", "--device", "cpu", "--threads", "1"]
    code, _, err = _main(monkeypatch, capsys, *run, "--transfer", project / "submissions" / "my-method")
    assert code == 0, err
    board = ["leaderboard", "--results", "runs/results", "--out", "board", "--check", "synth-tiny:*:ref-lstsq"]
    code, out, err = _main(monkeypatch, capsys, *board)
    _one_line_error(code, err, "--check 'synth-tiny:*:ref-lstsq'", f"absolute path {project / 'submissions' / 'my-method'}",
                    "run it again with --transfer given relative to the project folder (here: --transfer submissions/my-method)")
    assert out == "" and not (project / "board").exists()
    # as the message says: the stored result is reused, records the relative path, and the board is written
    code, _, err = _main(monkeypatch, capsys, *run, "--transfer", "submissions/my-method")
    assert code == 0 and "reusing the stored result" in err, err
    code, _, err = _main(monkeypatch, capsys, *board)
    assert code == 0, err
    (entry,) = json.loads((project / "board" / "leaderboard.json").read_text())["check"]["entries"]
    assert entry["transfer_path"] == "submissions/my-method"


def test_leaderboard_check_refuses_submitted_words_from_an_absolute_path() -> None:
    from vwbench.leaderboard.check import check_section

    params = {"embeddings": {"path": "/home/me/project/words.safetensors", "transfer": "lstsq"}}
    results = {"r1": {"dataset": "d", "task": "clip->owlv2", "transfer": "my-words+lstsq", "steps": 0, "n_trials": 1, "seed": 0, "value": 0.5,
                      "file": "d/clip-to-owlv2/w.json", "transfer_params": params}}
    with pytest.raises(UserError) as info:
        check_section(results, ["all"], 0.02)
    assert str(info.value).startswith("--check 'all': d/clip-to-owlv2/w.json ran the submitted words at the absolute path /home/me/project/words.safetensors")
    assert "run it again with --embeddings given relative to the project folder" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize("field", ["transfer_path", "embeddings_path"])
def test_check_refuses_a_baseline_entry_with_an_absolute_path(pin_board, tiny_tasks, tmp_path, monkeypatch, capsys, field) -> None:
    there = tmp_path / "someone-elses-checkout" / "submissions" / "my-method"
    there.mkdir(parents=True)  # it exists: the check would have run it
    entry = {**pin_board["check"]["entries"][0], field: str(there)}
    path = _baseline(tmp_path, pin_board, [entry])
    seen = _fake_runs(monkeypatch, [entry["value"]])
    code, out, err = _main(monkeypatch, capsys, "check", "--baseline", path, "--tasks-dir", tiny_tasks, "--out", tmp_path / "out", "--root", tmp_path)
    option = "--transfer" if field == "transfer_path" else "--embeddings"
    _one_line_error(code, err, "check entry 1/1: synth-tiny clip->owlv2 lstsq", f"at the absolute path {there}",
                    f"make its run again with {option} given relative to the project folder")
    assert (out, seen) == ("", []) and not (tmp_path / "out").exists()


def test_the_progress_line_names_the_submission_it_runs(pin_board, tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    (tmp_path / "project" / "submissions" / "my-method").mkdir(parents=True)
    entry = {**pin_board["check"]["entries"][0], "transfer_path": "submissions/my-method"}
    path = _baseline(tmp_path, pin_board, [entry, pin_board["check"]["entries"][0]])
    seen = _fake_runs(monkeypatch, [entry["value"], entry["value"]])
    code, _, err = _main(monkeypatch, capsys, "check", "--baseline", path, "--tasks-dir", tiny_tasks, "--root", tmp_path / "project")
    assert code == 0, err
    starts = [line for line in err.splitlines() if line.endswith(") ...")]
    assert starts == [f"check 1/2: synth-tiny clip->owlv2 lstsq (submission {tmp_path / 'project' / 'submissions' / 'my-method'}, steps 2, trials 2, seed 0, threads 1) ...",
                      "check 2/2: synth-tiny clip->owlv2 lstsq (steps 2, trials 2, seed 0, threads 1) ..."]
    assert seen[0].transfer == str(tmp_path / "project" / "submissions" / "my-method") and seen[1].transfer == "lstsq"


# ---- 2. threads ---------------------------------------------------------------------------------------


def test_check_repeats_each_run_with_the_threads_its_baseline_run_used(tiny_results, tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    from vwbench.leaderboard.check import _fingerprint

    results = _copy_results(tiny_results, tmp_path)
    _edit(_result(results, "lstsq"), machine={"torch_threads": 2})
    board = make_board(results, tmp_path / "board", "--check", SUBSET[0], "--check", SUBSET[1], "--tolerance", "0")
    two, one = board["check"]["entries"]
    assert (two["transfer"], two["threads"], one["threads"]) == ("lstsq", 2, 1)
    # a board written before entries stored it: the thread count its result recorded; neither: 1
    old = [{k: v for k, v in e.items() if k != "threads"} for e in (two, one)]
    orphan = {**old[1], "result": "r999"}
    path = _baseline(tmp_path, board, [two, *old, orphan])
    seen = _fake_runs(monkeypatch, [two["value"], two["value"], one["value"], one["value"]])
    code, _, err = _main(monkeypatch, capsys, "check", "--baseline", path, "--tasks-dir", tiny_tasks)
    assert code == 0, err
    assert [o.threads for o in seen] == [2, 2, 1, 1]
    assert "check 1/4: synth-tiny clip->owlv2 lstsq (steps 2, trials 2, seed 0, threads 2) ..." in err.splitlines()
    # the thread count is part of which runs an interrupted check's folder holds
    assert _fingerprint({"entries": [two]}) != _fingerprint({"entries": [{**two, "threads": 1}]}) == _fingerprint({"entries": [old[0]]})


def test_a_study_entry_is_repeated_with_its_threads(monkeypatch) -> None:
    import vwbench.registry.studies as studies_registry
    import vwbench.studies.runner as study_runner

    seen: list = []
    monkeypatch.setattr(studies_registry.StudyRegistry, "from_dir", classmethod(lambda cls, tasks=None: SimpleNamespace(get=lambda task, ds: SimpleNamespace(family="probe"))))
    monkeypatch.setattr(study_runner, "run_study", lambda spec, options, reporter: seen.append(options) or SimpleNamespace(result="r"))
    entry = {"dataset": "synth-x", "task": "probe:clip", "transfer": "probe", "seed": 0}
    study_runner.rerun_for_check({**entry, "threads": 3}, None, Path("out"), None, None)
    study_runner.rerun_for_check(entry, None, Path("out"), None, None)
    assert [o.threads for o in seen] == [3, 1]


def test_a_bad_stored_thread_count_is_a_malformed_check_section() -> None:
    from vwbench.leaderboard.check import _entry_problem

    entry = {"dataset": "d", "task": "clip->owlv2", "transfer": "lstsq", "steps": 2, "n_trials": 1, "seed": 0, "value": 0.5}
    assert _entry_problem({**entry, "threads": 4}) is None
    for bad in (0, True, 1.5, "2"):
        assert "threads" in _entry_problem({**entry, "threads": bad}), bad


def test_a_flagged_change_below_a_ten_thousandth_is_visible(pin_board, tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    from vwbench.leaderboard.check import CheckRow, format_drops

    entry = {**pin_board["check"]["entries"][0], "value": 0.4897, "tolerance": 0}
    path = _baseline(tmp_path, pin_board, [entry])
    _fake_runs(monkeypatch, [0.489703])
    code, out, err = _main(monkeypatch, capsys, "check", "--baseline", path, "--tasks-dir", tiny_tasks)
    assert code == 1
    assert "synth-tiny clip->owlv2 lstsq: baseline 0.489700, now 0.489703, change +3.00e-06  RISE (> tolerance 0.0000)" in err.splitlines()
    row = out.strip().splitlines()[-1].split()
    assert row == ["synth-tiny", "clip->owlv2", "lstsq", "0.489700", "0.489703", "+3.00e-06", "0.0000"]
    # a change of 1e-4 and more reads as before
    text = format_drops([CheckRow("d", "t", "m", 0.5, 0.4, 0.01)])
    assert text.splitlines()[-1].split() == ["d", "t", "m", "0.5000", "0.4000", "-0.1000", "0.0100"]


# ---- 3. mixed steps and trials in one table -----------------------------------------------------------


def test_a_table_of_runs_with_different_steps_or_trials_warns_once(tiny_results, tmp_path, monkeypatch, capsys) -> None:
    results = _copy_results(tiny_results, tmp_path)
    _edit(_result(results, "ridge"), steps=4)
    _edit(_result(results, "anchor"), n_trials=3)
    _edit(_result(results, "knn", "owlv2-to-clip"), steps=0)  # submitted words are not trained: not a difference
    code, _, err = _main(monkeypatch, capsys, "leaderboard", "--results", results, "--out", tmp_path / "board")
    assert code == 0, err
    warnings = [line for line in err.splitlines() if line.startswith("warning:")]
    assert warnings == [
        "warning: synth-tiny clip->owlv2: its ranked rows were run with different steps (2: anchor, knn, lstsq, procrustes and 1 more; 4: ridge) "
        "and trials (2: knn, lstsq, procrustes, random and 1 more; 3: anchor), so the table mixes settings: "
        "run them all with the same --steps and --trials, or remove the runs you do not want from --results"
    ]


# ---- 4. a regenerated board's check subset ----------------------------------------------------------


def test_regenerating_a_board_without_check_says_what_it_drops_and_how_to_keep_it(tiny_results, tmp_path, monkeypatch, capsys) -> None:
    out = tmp_path / "board"
    stored = make_board(tiny_results / "results", out, "--check", SUBSET[0], "--check", SUBSET[1], "--tolerance", "0.01")["check"]
    again = ["leaderboard", "--results", tiny_results / "results", "--out", out]
    code, _, err = _main(monkeypatch, capsys, *again)
    assert code == 0
    (line,) = [line for line in err.splitlines() if line.startswith("warning:")]
    assert line.startswith(f"warning: {out} held a leaderboard with a check subset of 2 run(s), and this one stores none (no --check given)")
    assert line.endswith("run this command again with --check 'synth-tiny:clip->owlv2:lstsq' --check 'synth-tiny:owlv2->clip:anchor' --tolerance 0.01")
    assert json.loads((out / "leaderboard.json").read_text())["check"] is None
    # the options it shows store the same runs again; with --check given nothing is said
    (out / "leaderboard.json").write_text(json.dumps({**json.loads((out / "leaderboard.json").read_text()), "check": stored}))
    code, _, err = _main(monkeypatch, capsys, *again, *shlex.split(line.split("run this command again with ", 1)[1]))
    assert code == 0 and "warning:" not in err, err
    assert json.loads((out / "leaderboard.json").read_text())["check"]["entries"] == stored["entries"]


def test_a_dropped_subset_whose_names_cannot_be_specs_still_warns(tmp_path) -> None:
    from vwbench.leaderboard.check import dropped_check_warning

    entries = [{"dataset": "d:x", "task": "clip->owlv2", "transfer": "lstsq"}, {"dataset": "d", "task": "clip->owlv2", "transfer": "a*b"}]
    (tmp_path / "leaderboard.json").write_text(json.dumps({"check": {"tolerance": 0.02, "entries": entries}}))
    assert dropped_check_warning(tmp_path).endswith("run this command again with the --check specs (and --tolerance) that made it")
    (tmp_path / "leaderboard.json").write_text(json.dumps({"check": {"tolerance": 0.02, "entries": entries[1:]}}))
    assert dropped_check_warning(tmp_path).endswith("--check 'd:clip->owlv2:a[*]b' --tolerance 0.02")
    (tmp_path / "leaderboard.json").write_text(json.dumps({"check": None}))
    assert dropped_check_warning(tmp_path) is None


# ---- 5. check stops at the first entry that errors (exit 2), as README says -------------------------


def test_check_stops_at_the_first_erroring_entry_with_exit_2_as_documented(pin_board, tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    entry = pin_board["check"]["entries"][0]
    path = _baseline(tmp_path, pin_board, [entry, entry])
    seen = _fake_runs(monkeypatch, [UserError("submission my-method: raised in fit(): RuntimeError: boom"), entry["value"]])
    code, out, err = _main(monkeypatch, capsys, "check", "--baseline", path, "--tasks-dir", tiny_tasks)
    assert (code, out, len(seen)) == (2, "", 1)  # the second entry is not run, and no table is printed
    assert err.splitlines()[-1] == "error: submission my-method: raised in fit(): RuntimeError: boom"
    readme = " ".join((REPO / "README.md").read_text().split())
    assert "exits 2 at the first run that cannot be made" in readme and "the runs after it are not made and no table is printed" in readme


def test_readme_ci_section_says_to_make_check_runs_with_one_thread_on_ci_s_kind_of_cpu() -> None:
    readme = " ".join((REPO / "README.md").read_text().split())
    ci = readme[readme.index("A project that wants to guard its own transfer method"):readme.index("## Layout")]
    assert "--threads 1" in ci and "same kind of CPU as CI" in ci and "(#crashes-resuming-and-concurrent-runs)" in ci


# ---- 6. aliases in --check specs ------------------------------------------------------------------------


def test_check_specs_take_the_dataset_and_task_names_run_takes(tiny_results, tmp_path, monkeypatch, capsys) -> None:
    board = make_board(tiny_results / "results", tmp_path / "board", "--check", "Synth_Tiny:CLIP -> owl:lstsq", "--check", "synth tiny:owl to clip:*")
    assert {(e["dataset"], e["task"], e["transfer"]) for e in board["check"]["entries"]} >= {("synth-tiny", "clip->owlv2", "lstsq"), ("synth-tiny", "owlv2->clip", "anchor")}
    assert {e["task"] for e in board["check"]["entries"]} == {"clip->owlv2", "owlv2->clip"}
    # a name that matches nothing either way is still named as given
    code, _, err = _main(monkeypatch, capsys, "leaderboard", "--results", tiny_results / "results", "--out", tmp_path / "b2", "--check", "synth_nowhere:clip->owl:lstsq")
    _one_line_error(code, err, "no result has dataset 'synth_nowhere'")
    assert not (tmp_path / "b2").exists()


def test_a_check_spec_takes_a_builtin_dataset_s_alias() -> None:
    from vwbench.leaderboard.check import check_section

    results = {"r1": {"dataset": "coco", "task": "clip->owlv2", "transfer": "lstsq", "steps": 2, "n_trials": 1, "seed": 0, "value": 0.5}}
    (entry,) = check_section(results, ["MS_COCO:clip->owl:lstsq"], 0.02)["entries"]
    assert (entry["dataset"], entry["task"]) == ("coco", "clip->owlv2")
