"""Bad input to `vwbench leaderboard`, `vwbench check` and `vwbench delta-sweep` never crashes and
never writes half a set of files: a damaged check entry, foreign or non-finite result files,
text UTF-8 cannot encode, an interrupted check, and a folder where an output file goes."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError

from .test_check import SUBSET
from .test_leaderboard import make_board


def invoke(*args: str):
    return CliRunner().invoke(app, [str(a) for a in args])


def one_line_error(res, *fragments: str) -> str:
    """The run ended with a :class:`UserError` (exit code 2 from the CLI) of one line holding
    every fragment."""
    assert res.exit_code != 0 and isinstance(res.exception, UserError), (res.output, repr(res.exception))
    message = str(res.exception)
    assert "\n" not in message and all(f in message for f in fragments), message
    return message


def strict_json(path: Path):
    """``path`` parsed as strict JSON (NaN and Infinity are not JSON)."""

    def refuse(token: str):
        raise ValueError(f"{token} is not JSON")

    return json.loads(path.read_text(encoding="utf-8"), parse_constant=refuse)


@pytest.fixture(scope="module")
def baseline(tiny_results, tmp_path_factory) -> dict:
    """A leaderboard with a check subset of two runs (one word run with a transfer, one in-domain)."""
    out = tmp_path_factory.mktemp("baseline") / "board"
    return make_board(tiny_results / "results", out, "--check", SUBSET[0], "--check", SUBSET[2])


def lstsq_file(results: Path) -> Path:
    return sorted(p for p in results.rglob("lstsq-*.json") if "clip-to-owlv2" in str(p))[0]


# ---- 1. vwbench check: every field of a stored run is validated ------------------------------------


@pytest.mark.parametrize(("field", "value", "fragment"), [
    ("n_trials", 0, "n_trials 0 is not an integer >= 1"),
    ("n_trials", -1, "n_trials -1 is not an integer >= 1"),
    ("steps", -3, "steps -3 is not an integer >= 0"),
    ("seed", "0", "seed"),
    ("value", float("nan"), "value nan is not a finite number"),
    ("value", float("inf"), "value inf is not a finite number"),
    ("value", True, "value True is not a finite number"),
    ("value", 1.5, "value 1.5 is outside [0, 1]"),
    ("value", -0.25, "value -0.25 is outside [0, 1]"),
    ("embeddings_path", 5, "embeddings_path 5"),
    ("embeddings_path", ["a"], "embeddings_path ['a']"),
    ("transfer_path", 5, "transfer_path 5"),
    ("transfer_path", {}, "transfer_path {}"),
    ("transfer_path", "", "transfer_path ''"),
    ("study", 5, "study 5"),
    ("dataset", "", "dataset"),
    ("transfer", "lstsq\udcff", "not valid UTF-8"),
    ("tolerance", -1, "tolerance -1"),
])
def test_a_damaged_check_entry_is_a_one_line_error(baseline, tiny_tasks, tmp_path, field, value, fragment) -> None:
    damaged = json.loads(json.dumps(baseline))
    damaged["check"]["entries"][0][field] = value
    path = tmp_path / "damaged.json"
    path.write_text(json.dumps(damaged))
    out = tmp_path / "out"
    res = invoke("check", "--baseline", path, "--tasks-dir", tiny_tasks, "--out", out)
    one_line_error(res, "malformed check section", "entry 0", fragment, "regenerate it")
    assert not out.exists()  # refused before --out is made


@pytest.mark.parametrize("bad", ["tasks-dir", "dataset", "task"])
def test_a_check_that_cannot_resolve_its_tasks_leaves_no_marker_in_out(baseline, tiny_tasks, tmp_path, bad) -> None:
    """The tasks folder and every entry's task are read before --out is claimed: a missing tasks
    folder, or an entry its tasks folder does not define, leaves no `.vwbench-check.json` behind."""
    from vwbench.leaderboard.check import MARKER

    board = json.loads(json.dumps(baseline))
    tasks = tmp_path / "no-such-tasks" if bad == "tasks-dir" else tiny_tasks
    if bad == "dataset":
        board["check"]["entries"][-1]["dataset"] = "synth-nowhere"
    elif bad == "task":
        board["check"]["entries"][-1]["task"] = "clip->nowhere"
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(board))
    out = tmp_path / "out"
    one_line_error(invoke("check", "--baseline", path, "--tasks-dir", tasks, "--out", out), "no tasks folder" if bad == "tasks-dir" else "nowhere")
    assert not out.exists()  # neither the marker nor the folder: --out is made only once the input checks out


def test_a_null_path_in_a_check_entry_is_an_absent_one() -> None:
    from vwbench.leaderboard.check import _check_problem, _rerun_entry

    entry = {"dataset": "d", "task": "clip->owlv2", "transfer": "lstsq", "steps": 0, "n_trials": 1, "seed": 0, "value": 0.5,
             "transfer_path": None, "embeddings_path": None, "study": None}
    assert _check_problem({"tolerance": 0.1, "entries": [entry]}) is None
    assert "transfer_path" not in _rerun_entry(entry)  # re-run with the stored transfer, not the task's default


# ---- 2. foreign result files are skipped, never fatal ----------------------------------------------


FOREIGN = {
    "task-clip": {"task": "clip"},
    "task-probe": {"task": "probe"},
    "task-x-y": {"task": "x:y"},
    "task-probe-clip": {"task": "probe:clip"},  # a study's name without its study record
    "source-judge": {"source": "judge", "task": "judge->owlv2"},
    "metric-bogus": {"metric": "bogus"},
    "value-true": {"value": True},
    "steps-negative": {"steps": -3},
    "trials-zero": {"n_trials": 0},
    "seed-float": {"seed": 0.5},
    "dataset-empty": {"dataset": ""},
}


def test_a_foreign_result_file_is_skipped_not_fatal(tiny_results, tmp_path) -> None:
    results = tmp_path / "results"
    shutil.copytree(tiny_results / "results", results)
    lstsq = lstsq_file(results)
    payload = json.loads(lstsq.read_text())
    newest = {**payload["provenance"], "created": "2999-01-01T00:00:00+00:00"}  # would win its unit if it were read
    for name, change in FOREIGN.items():
        (lstsq.parent / f"{name}.json").write_text(json.dumps({**payload, "provenance": newest, **change}))
    out = tmp_path / "board"
    res = invoke("leaderboard", "--results", results, "--out", out)
    assert res.exit_code == 0, res.output
    assert f"{len(FOREIGN)} file(s) skipped (e.g. " in res.output and "; all in README.md)" in res.output  # a reason on the terminal too
    board = strict_json(out / "leaderboard.json")
    skipped = {Path(s["file"]).stem: s["reason"] for s in board["skipped"]}
    assert set(skipped) == set(FOREIGN)
    assert "task 'probe:clip' is not clip->owlv2" in skipped["task-probe-clip"]
    assert "metric 'bogus' does not score owlv2" in skipped["metric-bogus"]
    assert "not true/false" in skipped["value-true"]
    kept = [r for r in board["results"].values() if r["task"] == "clip->owlv2" and r["transfer"] == "lstsq"]
    assert [r["value"] for r in kept] == [payload["value"]]


@pytest.mark.parametrize("params", [{"submission": [1]}, {"submission": {"path": 5}}, {"embeddings": {"path": ["x"]}}])
def test_a_malformed_submission_record_with_check_is_a_one_line_error(tiny_results, tmp_path, params) -> None:
    results = tmp_path / "results"
    shutil.copytree(tiny_results / "results", results)
    lstsq = lstsq_file(results)
    payload = json.loads(lstsq.read_text())
    lstsq.write_text(json.dumps({**payload, "transfer_params": params}))
    out = tmp_path / "board"
    one_line_error(invoke("leaderboard", "--results", results, "--out", out, "--check", "all"), "malformed transfer_params", lstsq.name)
    assert not out.exists()


def test_a_result_of_an_unknown_dataset_is_kept_as_data(tiny_results, tmp_path) -> None:
    """A dataset comes from the tasks folder a run used (anyone may add one), so the leaderboard,
    which reads no tasks folder, keeps it: the name is data, escaped where it is shown."""
    results = tmp_path / "results"
    shutil.copytree(tiny_results / "results", results)
    lstsq = lstsq_file(results)
    (lstsq.parent / "mine.json").write_text(json.dumps({**json.loads(lstsq.read_text()), "dataset": "my-own-data"}))
    board = make_board(results, tmp_path / "board")
    assert "my-own-data" in board["datasets"] and not board["skipped"]


# ---- 3. NaN and infinities: skipped, and leaderboard.json is strict JSON -----------------------------


NON_FINITE = {
    "per-concept-nan": {"per_concept": {"circle": float("nan")}},
    "metrics-nan": {"metrics": {"map50": float("nan")}},
    "metrics-inf": {"metrics": {"map50": float("inf")}},
    "params-nan": {"transfer_params": {"alpha": [1.0, float("nan")]}},
    "ci-inf": {"ci95": [0.0, float("inf")]},
}


def _copied_results(tiny_results, tmp_path):
    """A copy of the tiny results, its lstsq result file and payload, and that payload's provenance
    made the newest (so a file derived from it is the one a leaderboard keeps)."""
    results = tmp_path / "results"
    shutil.copytree(tiny_results / "results", results)
    lstsq = lstsq_file(results)
    payload = json.loads(lstsq.read_text())
    return results, lstsq, payload, {**payload["provenance"], "created": "2999-01-01T00:00:00+00:00"}


def test_non_finite_numbers_in_a_result_are_skipped_and_the_board_is_strict_json(tiny_results, tmp_path) -> None:
    results, lstsq, payload, newest = _copied_results(tiny_results, tmp_path)
    for name, change in NON_FINITE.items():
        (lstsq.parent / f"{name}.json").write_text(json.dumps({**payload, "provenance": newest, **change}))
    out = tmp_path / "board"
    make_board(results, out)
    board = strict_json(out / "leaderboard.json")  # a NaN would make this raise
    skipped = {Path(s["file"]).stem: s["reason"] for s in board["skipped"]}
    assert set(skipped) == set(NON_FINITE)
    assert "per_concept.circle: nan is not a finite number" in skipped["per-concept-nan"]
    assert "transfer_params.alpha[1]: nan is not a finite number" in skipped["params-nan"]


def test_the_writer_refuses_a_non_finite_board_and_writes_nothing(tiny_results, tmp_path, monkeypatch) -> None:
    """The guard behind the skipping: a board holding NaN is a one-line error, no file written."""
    import vwbench.leaderboard as lb

    real_build = lb.build

    def nan_build(*args, **kwargs):
        board = real_build(*args, **kwargs)
        next(iter(board["results"].values()))["value"] = float("nan")
        return board

    monkeypatch.setattr(lb, "build", nan_build)
    out = tmp_path / "board"
    with pytest.raises(UserError, match="not a finite number"):
        lb.write_leaderboard(tiny_results / "results", out)
    assert not out.exists() or not any(out.iterdir())


# ---- 4. text UTF-8 cannot encode: refused or skipped, never half a leaderboard ------------------------


def test_a_name_utf8_cannot_encode_is_refused_before_anything_is_written(tiny_results, tmp_path) -> None:
    results = tiny_results / "results"
    out = tmp_path / "lbname\udcff"  # what Python makes of the byte 0xff in a command-line path
    one_line_error(invoke("leaderboard", "--results", results, "--out", out), "not valid UTF-8", "--name")
    assert not out.exists()
    out = tmp_path / "plain"
    one_line_error(invoke("leaderboard", "--results", results, "--out", out, "--name", "ab\udcffcd"), "--name", "not valid UTF-8")
    assert not out.exists()
    res = invoke("leaderboard", "--results", results, "--out", tmp_path / "lbname\udcff", "--name", "fine")  # the folder is fine
    assert res.exit_code == 0, res.output
    assert {p.name for p in (tmp_path / "lbname\udcff").iterdir()} == {"leaderboard.json", "README.md", "index.html"}


def test_an_empty_name_falls_back_to_the_out_folders_name(tiny_results, tmp_path) -> None:
    from vwbench.leaderboard import board_name

    assert board_name(tmp_path / "myboard", "") == "myboard" and board_name(tmp_path / "myboard", "given") == "given"
    out = tmp_path / "myboard"
    res = invoke("leaderboard", "--results", tiny_results / "results", "--out", out, "--name", "")
    assert res.exit_code == 0, res.output
    assert json.loads((out / "leaderboard.json").read_text())["name"] == "myboard"
    assert (out / "README.md").read_text().startswith("# Leaderboard: myboard\n")


def test_a_result_with_text_utf8_cannot_encode_is_skipped(tiny_results, tmp_path) -> None:
    results, lstsq, payload, newest = _copied_results(tiny_results, tmp_path)
    bad = {
        "transfer": {"transfer": "lstsq\udcff"},
        "device": {"provenance": {**newest, "device": "cpu\udcff"}},
        "concept": {"per_concept": {"circle\udcff": 0.5}},
    }
    for name, change in bad.items():  # json.dumps writes the lone surrogates as \udcff escapes
        (lstsq.parent / f"{name}.json").write_text(json.dumps({**payload, "provenance": newest, **change}))
    shutil.copy(lstsq, os.fsdecode(os.fsencode(lstsq.parent) + b"/name\xff.json"))  # a valid result whose name is not UTF-8
    out = tmp_path / "board"
    board = make_board(results, out)
    skipped = {s["file"].rsplit("/", 1)[-1]: s["reason"] for s in board["skipped"]}
    assert set(skipped) == {"transfer.json", "device.json", "concept.json", "name\\xff.json"}, skipped
    assert "not valid UTF-8" in skipped["name\\xff.json"]
    for name in ("leaderboard.json", "README.md", "index.html"):
        (out / name).read_text(encoding="utf-8")  # all three written, strict UTF-8


def test_a_folder_where_a_leaderboard_file_goes_writes_none_of_the_three(tiny_results, tmp_path) -> None:
    out = tmp_path / "board"
    (out / "index.html").mkdir(parents=True)
    one_line_error(invoke("leaderboard", "--results", tiny_results / "results", "--out", out), "index.html", "a folder")
    assert [p.name for p in out.iterdir()] == ["index.html"]  # neither leaderboard.json nor README.md, no temp file


# ---- 5. an interrupted check resumes with the same command --------------------------------------------


def _interrupt_second_run(monkeypatch) -> None:
    """The second run of a check stops with Ctrl-C, after the first has stored its words and result."""
    import vwbench.runner as runner

    real, calls = runner.run_task, []

    def run_task(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(runner, "run_task", run_task)


def test_an_interrupted_check_resumes_from_its_out(baseline, tiny_results, tiny_tasks, tmp_path, monkeypatch) -> None:
    from vwbench.leaderboard.check import run_check
    from vwbench.results import journal

    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    out = tmp_path / "cki"
    journal.reset()
    with monkeypatch.context() as m:
        _interrupt_second_run(m)
        with pytest.raises(KeyboardInterrupt):
            run_check(path, tiny_tasks, out, log=lambda _: None)
    saved = journal.saved()
    assert saved and all(Path(p).exists() and Path(p).is_relative_to(out) for p, _ in saved)  # what Ctrl-C reports is there
    # "run the same command again to resume from there" is true
    res = invoke("check", "--baseline", path, "--tasks-dir", tiny_tasks, "--out", out)
    assert res.exit_code == 0, res.output
    assert "resuming the interrupted check" in res.output and "ok: 2 value(s) within tolerance" in res.output
    # a finished check's folder, one of another baseline's check, and a folder of stored runs are refused
    one_line_error(invoke("check", "--baseline", path, "--tasks-dir", tiny_tasks, "--out", out), "finished")
    other = json.loads(json.dumps(baseline))
    other["check"]["entries"] = other["check"]["entries"][:1]
    other_path = tmp_path / "other.json"
    other_path.write_text(json.dumps(other))
    fresh = tmp_path / "cki2"
    with monkeypatch.context() as m:
        _interrupt_second_run(m)
        with pytest.raises(KeyboardInterrupt):
            run_check(path, tiny_tasks, fresh, log=lambda _: None)
    one_line_error(invoke("check", "--baseline", other_path, "--tasks-dir", tiny_tasks, "--out", fresh), "other runs")
    one_line_error(invoke("check", "--baseline", path, "--tasks-dir", tiny_tasks, "--out", tiny_results), "not empty")
    journal.reset()


def test_an_interrupted_check_without_out_reports_nothing_kept(baseline, tiny_tasks, tmp_path, monkeypatch) -> None:
    from vwbench.leaderboard.check import run_check
    from vwbench.results import journal

    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    journal.reset()
    lines: list[str] = []
    _interrupt_second_run(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        run_check(path, tiny_tasks, None, log=lines.append)
    assert journal.saved() == []  # nothing points into the deleted temporary folder
    assert journal.summary() == "nothing was saved yet"
    assert any("temporary folder, now deleted" in line and "--out" in line for line in lines)
    journal.reset()


# ---- 6. delta-sweep writes its table and plot all or nothing ------------------------------------------


def test_delta_sweep_with_a_folder_where_the_plot_goes_writes_nothing(tiny_tasks, tmp_path) -> None:
    sweeps = tmp_path / "sweeps" / "synth-tiny"
    (sweeps / "delta-clip-to-clip.png").mkdir(parents=True)
    res = invoke("delta-sweep", "--task", "clip->clip", "--dataset", "synth-tiny", "--deltas", "0.5", "--steps", "1", "--trials", "1",
                 "--tasks-dir", tiny_tasks, "--out", tmp_path, "--device", "cpu", "--threads", "1")
    one_line_error(res, "delta-clip-to-clip.png", "a folder")
    assert [p.name for p in sweeps.iterdir()] == ["delta-clip-to-clip.png"]


def test_a_file_set_is_written_all_or_nothing(tmp_path, monkeypatch, disk_full_at) -> None:
    from vwbench.results.atomic import write_file_set

    files = {tmp_path / "a.json": b"new a", tmp_path / "b.md": b"new b", tmp_path / "c.png": b"new c"}
    (tmp_path / "a.json").write_bytes(b"old a")
    (tmp_path / "c.png").mkdir()
    with pytest.raises(UserError, match="c.png: it is a folder"):
        write_file_set(files)
    assert (tmp_path / "a.json").read_bytes() == b"old a" and not (tmp_path / "b.md").exists()
    (tmp_path / "c.png").rmdir()
    disk_full_at(3)  # the disk fills up while the third file is written
    with pytest.raises(UserError, match="No space left"):
        write_file_set(files)
    monkeypatch.undo()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.json"] and (tmp_path / "a.json").read_bytes() == b"old a"
    write_file_set(files)
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir()} == {"a.json": b"new a", "b.md": b"new b", "c.png": b"new c"}


def test_a_check_killed_while_writing_its_marker_can_start_again(tmp_path) -> None:
    """A kill during the marker's write (or the folder's write probe) leaves only a temp file: the
    same command starts again instead of calling the folder not empty."""
    from vwbench.leaderboard.check import MARKER, _claim_out

    out = tmp_path / "chk"
    out.mkdir()
    (out / f".{MARKER}.45lstz1o.tmp").write_text("")
    (out / ".vwbench-write-check.x1.tmp").write_text("")
    _claim_out(out, "fingerprint", log=print)
    assert sorted(p.name for p in out.iterdir()) == [MARKER]
    (out / "other.json").write_text("{}")  # anything else still makes it another folder's
    (out / MARKER).unlink()
    with pytest.raises(UserError, match="not empty"):
        _claim_out(out, "fingerprint", log=print)


# ---- 5. a study's undefined secondary metric: shown as missing, not a reason to skip ------------------


def _study_result(**change) -> dict:
    """A probe study result, written from scratch (no run needed): headline 0.5, two secondaries."""
    payload = {
        "schema_version": 1, "task": "probe:clip", "source": "clip", "target": "clip", "dataset": "synth-tiny",
        "metric": "transform_acc_mlp", "value": 0.5, "ci95": [0.4, 0.6], "per_concept": {}, "per_word": [],
        "metrics": {"transform_acc_mlp": 0.5, "group_acc_mlp": 0.25}, "transfer": "probe", "n_trials": 1, "steps": 2, "seed": 0,
        "provenance": {
            "vwbench_version": "0", "git_commit": None, "task_version": 1, "checkpoints": [], "dataset_manifest_hash": "h",
            "versions": {}, "device": "cpu", "dtype": "float32", "wall_time_s": {}, "created": "2024-01-01T00:00:00+00:00",
        },
        "study": {"family": "probe", "key": "k", "encoders": {"encoder": "clip"}},
    }
    return {**payload, **change}


def test_a_study_result_with_an_undefined_secondary_metric_is_kept_and_shown_missing(tmp_path) -> None:
    """A probe accuracy over no test rows is NaN: the result stays on the board with that metric
    missing (null in strict JSON, a dash in README.md); a NaN headline is still skipped."""
    results = tmp_path / "results"
    results.mkdir()
    undefined = {"transform_acc_mlp": 0.5, "group_acc_mlp": float("nan"), "class_acc_mlp": float("nan")}
    (results / "undefined.json").write_text(json.dumps(_study_result(metrics=undefined)))
    # an infinite metric is not undefined but broken: that result is skipped
    exploded = _study_result(task="probe:sd", source="sd", target="sd", metrics={**undefined, "class_acc_mlp": float("inf")})
    (results / "exploded.json").write_text(json.dumps(exploded))
    nan_headline = _study_result(task="probe:owlv2", source="owlv2", target="owlv2", value=float("nan"), metrics=undefined)
    (results / "nan-headline.json").write_text(json.dumps(nan_headline))
    nan_elsewhere = _study_result(task="probe:judge", source="judge", target="judge", per_concept={"circle": float("nan")}, metrics=undefined)
    (results / "nan-elsewhere.json").write_text(json.dumps(nan_elsewhere))
    out = tmp_path / "board"
    res = invoke("leaderboard", "--results", results, "--out", out)
    assert res.exit_code == 0, res.output
    board = strict_json(out / "leaderboard.json")  # a NaN would make this raise
    skipped = {s["file"]: s["reason"] for s in board["skipped"]}
    assert set(skipped) == {"nan-headline.json", "nan-elsewhere.json", "exploded.json"}
    assert "class_acc_mlp: inf is not a finite number" in skipped["exploded.json"], skipped["exploded.json"]
    assert "value: nan is not a finite number" in skipped["nan-headline.json"]
    assert "per_concept.circle: nan is not a finite number" in skipped["nan-elsewhere.json"]
    (record,) = board["results"].values()
    assert record["file"] == "undefined.json" and record["value"] == 0.5
    assert record["secondary_metrics"] == {"transform_acc_mlp": 0.5, "group_acc_mlp": None, "class_acc_mlp": None}
    (row,) = board["studies"]["probe"]["datasets"]["synth-tiny"]["rows"]
    assert row["metrics"]["group_acc_mlp"] is None and "group_acc_mlp" in board["studies"]["probe"]["datasets"]["synth-tiny"]["columns"]
    readme = (out / "README.md").read_text(encoding="utf-8")
    assert "| probe:clip |" in readme and "0.500 | – | –" in readme


def test_an_analysis_written_beside_the_results_is_not_a_skipped_result(tiny_results, tmp_path) -> None:
    """`vwbench analyze` writes analysis-NAME-<result stem>.json beside the result by default; a
    leaderboard of that folder neither reads it as a result nor lists it as a skipped one. A file
    so named that is a valid result is still a result."""
    from vwbench.analysis import default_stem

    results = tmp_path / "results"
    shutil.copytree(tiny_results / "results", results)
    lstsq = lstsq_file(results)
    default_stem("neighbors", lstsq).with_suffix(".json").write_text(json.dumps([{"result": str(lstsq), "words": []}]))
    default_stem("tsne", lstsq).with_suffix(".json").write_text(json.dumps({"layers": [1, 2]}))
    (lstsq.parent / "analysis-other.json").write_text(json.dumps({"layers": [1, 2]}))  # not an analysis's name
    board = make_board(results, tmp_path / "board")
    assert [Path(s["file"]).name for s in board["skipped"]] == ["analysis-other.json"]
    payload = json.loads(lstsq.read_text())
    renamed = default_stem("truncation", lstsq).with_suffix(".json")
    lstsq.rename(renamed)
    board = make_board(results, tmp_path / "board2")
    kept = [r for r in board["results"].values() if r["task"] == "clip->owlv2" and r["transfer"] == "lstsq"]
    assert [r["value"] for r in kept] == [payload["value"]]


def test_a_check_of_a_board_from_another_tasks_folder_says_to_pass_it(baseline, tmp_path) -> None:
    """The baseline's runs used their own tasks folder (the tiny one); checked without it, the
    error named only the unknown dataset."""
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))
    out = tmp_path / "out"
    res = invoke("check", "--baseline", path, "--out", out)
    one_line_error(res, "unknown dataset 'synth-tiny'", "pass it with --tasks-dir (this check read ")
    assert not out.exists()


def test_the_tasks_dir_hint_is_not_given_where_a_tasks_folder_was(baseline, tmp_path, monkeypatch) -> None:
    path = tmp_path / "baseline.json"
    path.write_text(json.dumps(baseline))  # its runs are of the tiny tasks folder; the repository's is given
    res = invoke("check", "--baseline", path, "--tasks-dir", Path(__file__).resolve().parents[2] / "tasks", "--out", tmp_path / "out")
    one_line_error(res, "unknown dataset 'synth-tiny'")
    assert "pass it with --tasks-dir" not in str(res.exception)
