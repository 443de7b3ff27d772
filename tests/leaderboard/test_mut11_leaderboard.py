"""Mutation round 11 pins on leaderboards, from hand-made entries and boards (no runs): where pairs
of a family outside the known order go, that study results stay out of the word tables, which
study columns a table shows, the order of study families outside the known ones; collecting
(entry order, skip reasons, one-line names, exactly three settings differences); checking (study
specs, submission paths, hints, blank paths, empty subsets, the drop table, a foreign marker);
README.md's boundaries (skipped list, 1e-3 cells, the row limit, empty study tables) and
index.html's Content-Security-Policy."""

from __future__ import annotations

import base64
import hashlib
import html
import importlib
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from vwbench.errors import UserError
from vwbench.leaderboard.build import _dataset, _studies, build
from vwbench.leaderboard.check import MARKER, CheckRow, _claim_out, _entry_problem, check_section, format_drops, load_check, run_check
from vwbench.leaderboard.collect import Collected, _differences, _thumbnail, supersede_warnings
from vwbench.leaderboard.html_page import SORT_SCRIPT, render_html
from vwbench.leaderboard.markdown import _render_table, _value, render_markdown

from .test_build_pins import full_entry, with_settings
from .test_check_pins import _fake_runs
from .test_rank_arithmetic import entry, ids_of, study_entry
from .test_render_pins import board, record

# ------------------------------------------------------------------ build


def test_pairs_and_grid_models_of_a_family_outside_the_known_order_come_last() -> None:
    entries = [entry("zoo->clip", "lstsq", 0.5), entry("clip->owlv2", "lstsq", 0.4), entry("sd->clip", "lstsq", 0.3)]
    ds = _dataset(entries, ids_of(entries))
    assert list(ds["pairs"]) == ["sd->clip", "clip->owlv2", "zoo->clip"]
    assert ds["grids"][0]["models"] == ["sd", "owlv2", "clip", "zoo"]


def test_study_results_stay_out_of_the_word_tables() -> None:
    word = full_entry("owlv2->clip", "lstsq", 0.6)
    study = full_entry("clip->clip", "linear", 0.8)
    study.file, study.result.task = "probe.json", "probe:clip"
    study.result.study = study_entry("probe", "probe:clip", "linear", 0.8, "probe.json").result.study
    out = build(Collected([word, study], []), "pins")
    assert list(out["datasets"]) == ["d"]
    assert list(out["datasets"]["d"]["pairs"]) == ["owlv2->clip"]
    assert [r["method"] for r in out["datasets"]["d"]["summary"]] == ["lstsq"]
    assert [r["task"] for r in out["studies"]["probe"]["datasets"]["d"]["rows"]] == ["probe:clip"]
    assert set(out["results"]) == {"r1", "r2"}


def test_a_study_table_shows_only_the_family_columns_its_results_hold_in_the_family_order() -> None:
    e = study_entry("probe", "probe:clip", "linear", 0.8, "p1")
    e.result.metrics = {"class_acc_mlp": 0.5, "not_a_column": 0.1, "transform_acc_linear": 0.7}
    table = _studies([e], {"p1": "r1"})["probe"]["datasets"]["d"]
    assert table["columns"] == ["transform_acc_linear", "class_acc_mlp"]


def test_study_families_outside_the_known_ones_follow_them_by_name() -> None:
    names = ["zeta", "eta", "beta", "theta", "alpha", "iota", "gamma", "kappa"]  # 8! orders: set order is never sorted by chance
    entries = [study_entry(f, f"{f}:clip", "linear", 0.5, f"{f}.json") for f in names]
    entries.append(study_entry("probe", "probe:clip", "linear", 0.5, "probe.json"))
    out = _studies(entries, {e.file: e.file for e in entries})
    assert list(out) == ["probe", *sorted(names)]


# ------------------------------------------------------------------ collect


def test_exactly_three_settings_differences_are_all_named_with_no_count() -> None:
    kept = with_settings(full_entry("owlv2->clip", "lstsq", 0.5, file="a.json", steps=20), {"hyperparameters": {k: 1 for k in "abc"}})
    other = with_settings(full_entry("owlv2->clip", "lstsq", 0.5, file="b.json"), {"hyperparameters": {k: 2 for k in "abc"}})
    assert _differences(kept, other)["settings"] == (
        "settings hyperparameters.a 1 (kept) vs 2, hyperparameters.b 1 (kept) vs 2, hyperparameters.c 1 (kept) vs 2"
    )


def test_collect_orders_entries_by_dataset_task_then_method_and_trims_the_path_from_a_skip_reason(tmp_path, monkeypatch) -> None:
    collect_module = importlib.import_module("vwbench.leaderboard.collect")  # the package re-exports collect(), the function
    results = {
        "1.json": entry("owlv2->clip", "lstsq", 0.5).result,
        "2.json": entry("clip->owlv2", "ridge", 0.5).result,
        "3.json": entry("clip->owlv2", "anchor", 0.5).result,
    }
    for r in results.values():
        r.fracture, r.per_concept = None, {}
    for name in [*results, "bad.json"]:
        (tmp_path / name).write_text("{}")

    def read(path):
        if path.name == "bad.json":
            raise UserError(f"{path}: invalid result file: value must be a number")
        return results[path.name]

    monkeypatch.setattr(collect_module, "_read", read)
    collected = collect_module.collect(tmp_path)
    assert [e.file for e in collected.entries] == ["3.json", "2.json", "1.json"]
    assert collected.skipped == [("bad.json", "invalid result file: value must be a number")]


def test_supersede_warnings_put_a_names_whitespace_on_one_line() -> None:
    rec = {"file": "old\n.json", "kept": "new\t\t.json", "why": "", "differs": ["seed"], "dataset": "d\n", "task": "owlv2->clip",
           "transfer": "my\n  method"}
    (line,) = supersede_warnings([rec])
    assert line.startswith("warning: d owlv2->clip my method: kept new .json over old .json: their seeds differ")


# ------------------------------------------------------------------ check


def test_a_check_spec_of_a_study_task_joins_the_middle_parts_into_the_task() -> None:
    results = {"r1": record("probe:clip", "linear", 0.8, study={"family": "probe"}), "r2": record("owlv2->clip", "lstsq", 0.6)}
    section = check_section(results, ["synth-x:probe:clip:linear"], 0.05)
    assert section["entries"] == [{"dataset": "synth-x", "task": "probe:clip", "transfer": "linear", "steps": 1000, "n_trials": 3,
                                   "seed": 7, "value": 0.8, "study": "probe", "result": "r1"}]


def test_submitted_words_keep_the_submission_path_over_the_transfer_that_carried_them() -> None:
    params = {"submission": {"path": "subs/mine", "sha256": "a" * 64}, "embeddings": {"path": "words.safetensors", "transfer": "lstsq"}}
    results = {"r1": record("owlv2->clip", "mine", 0.6, transfer_params=params)}
    (entry_,) = check_section(results, ["all"], 0.0)["entries"]
    assert (entry_["transfer_path"], entry_["embeddings_path"]) == ("subs/mine", "words.safetensors")


def test_the_drop_table_pads_each_column_on_the_right() -> None:
    rows = [CheckRow("d", "owlv2->clip", "lstsq", 0.5, 0.4, 0.01), CheckRow("synth-tiny", "clip->owlv2", "anchor", 0.75, 0.5, 0.1)]
    lines = format_drops(rows).splitlines()
    assert lines[2:] == [
        "dataset     task         transfer  baseline  now     change   tolerance",
        "----------  -----------  --------  --------  ------  -------  ---------",
        "d           owlv2->clip  lstsq     0.5000    0.4000  -0.1000  0.0100   ",
        "synth-tiny  clip->owlv2  anchor    0.7500    0.5000  -0.2500  0.1000   ",
    ]


def test_a_spec_matching_no_dataset_lists_twelve_datasets_in_full() -> None:
    results = {f"r{i}": {**record("owlv2->clip", "lstsq", 0.5), "dataset": f"ds{i:02d}"} for i in range(12)}
    listing = ", ".join(f"ds{i:02d}" for i in range(12))
    with pytest.raises(UserError) as refused:
        check_section(results, ["nope:*:*"], 0.0)
    assert str(refused.value) == f"--check 'nope:*:*' matches no result: no result has dataset 'nope' (datasets: {listing})"


def test_a_spec_naming_a_submission_folder_with_a_trailing_slash_is_told_its_method_name() -> None:
    results = {"r1": record("owlv2->clip", "mine", 0.6, transfer_params={"submission": {"path": "subs/mine", "sha256": "a" * 64}})}
    with pytest.raises(UserError, match=r"; the submission at 'subs/mine/' ran as mine; names here: mine$"):
        check_section(results, ["synth-x:owlv2->clip:subs/mine/"], 0.0)


def test_a_blank_submission_path_is_a_malformed_record() -> None:
    results = {"r1": record("owlv2->clip", "mine", 0.6, transfer_params={"submission": {"path": "   "}})}
    with pytest.raises(UserError, match=r"has a malformed transfer_params.submission \(not an object with a path string\)"):
        check_section(results, ["all"], 0.0)


def test_a_baseline_whose_check_has_no_entries_stores_no_subset(tmp_path) -> None:
    path = tmp_path / "leaderboard.json"
    path.write_text(json.dumps({**board(), "check": {"tolerance": 0.01, "device": "cpu", "entries": []}}))
    with pytest.raises(UserError, match=r"it stores no check subset; regenerate it with `vwbench leaderboard \.\.\. --check SPEC`"):
        load_check(path)


# ------------------------------------------------------------------ README.md


def test_a_board_without_skipped_files_has_no_skipped_list() -> None:
    text = render_markdown({**board(), "skipped": []})
    assert "Skipped files" not in text
    assert "Skipped files (not valid results):" in render_markdown(board())


def test_a_table_cell_of_exactly_1e_3_has_three_decimals() -> None:
    assert _value(1e-3) == "0.001" and _value(-1e-3) == "-0.001" and _value(9.99e-4) == "9.99e-04"


def test_a_table_of_exactly_the_row_limit_is_shown_whole() -> None:
    out = _render_table(["i"], [{"i": i} for i in range(40)])
    assert len(out) == 2 + 40 and out[-1] == "| 39 |"


def test_a_study_table_without_rows_says_so() -> None:
    b = board()
    b["studies"]["probe"]["datasets"]["synth-x"]["tables"]["r5"]["per_layer"]["rows"] = []
    lines = render_markdown(b).splitlines()
    title = lines.index("#### r5 (probe:clip, linear): per\\_layer")
    assert lines[title + 1: title + 4] == ["", "No rows (the study found none).", ""]


# ------------------------------------------------------------------ index.html


def test_the_csp_forbids_everything_but_inline_styles_data_images_and_the_own_script() -> None:
    page = render_html(board())
    csp = html.unescape(re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page).group(1))
    digest = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode()).digest()).decode()
    assert csp.split("; ") == [
        "default-src 'none'", "img-src data:", "style-src 'unsafe-inline'", f"script-src 'sha256-{digest}'", "base-uri 'none'", "form-action 'none'",
    ]


def test_an_out_marked_by_another_check_format_is_not_resumed(tmp_path) -> None:
    (tmp_path / MARKER).write_text(json.dumps({"vwbench_check": 2, "runs": "fp", "finished": False}))
    logged = []
    with pytest.raises(UserError, match=r": not empty; `vwbench check` re-runs from scratch"):
        _claim_out(tmp_path, "fp", logged.append)
    assert logged == [] and json.loads((tmp_path / MARKER).read_text())["vwbench_check"] == 2
    (tmp_path / MARKER).write_text(json.dumps({"vwbench_check": 1, "runs": "fp", "finished": False}))
    _claim_out(tmp_path, "fp", logged.append)
    assert len(logged) == 1 and logged[0].startswith("resuming the interrupted check in ")


def test_a_stored_run_may_have_any_integer_seed_but_not_a_bool() -> None:
    stored = {"dataset": "d", "task": "owlv2->clip", "transfer": "lstsq", "steps": 0, "n_trials": 1, "value": 0.5}
    assert [_entry_problem({**stored, "seed": seed}) for seed in (-7, 0, 2**40)] == [None, None, None]
    assert _entry_problem({**stored, "seed": True}) == "seed missing or not an integer"


def test_a_board_written_before_superseded_by_lists_the_names_alone() -> None:
    old = {k: v for k, v in board().items() if k != "superseded_by"}
    lines = render_markdown(old).splitlines()
    assert lines[lines.index("## Superseded results") + 4:] == ["- old.json", "- short.json"]


def test_a_sample_thumbnail_is_an_rgb_png(tmp_path) -> None:
    path = tmp_path / "circle.png"
    Image.new("RGBA", (200, 100), (10, 200, 10, 128)).save(path)
    uri = _thumbnail(path)
    assert uri.startswith("data:image/png;base64,")
    with Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1]))) as thumb:
        assert (thumb.format, thumb.mode, thumb.size) == ("PNG", "RGB", (96, 48))


def test_a_check_of_submitted_words_re_evaluates_the_file_without_steps_or_trials(tiny_tasks, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # a stored path is relative to the project folder (an absolute one is refused)
    words = Path("words.safetensors")
    words.write_bytes(b"not read: the run is faked")
    stored = {"dataset": "synth-tiny", "task": "clip->owlv2", "transfer": "my-words+lstsq", "steps": 0, "n_trials": 1, "seed": 3,
              "value": 0.5, "transfer_path": "lstsq", "embeddings_path": str(words), "result": "r1"}
    baseline = tmp_path / "leaderboard.json"
    baseline.write_text(json.dumps({**board(), "check": {"tolerance": 0.01, "device": "cpu", "entries": [stored]}}))
    seen = _fake_runs(monkeypatch, [0.5])
    (row,) = run_check(baseline, tiny_tasks, None, log=lambda _: None)
    assert (seen[0].steps, seen[0].trials, seen[0].embeddings, seen[0].transfer, seen[0].seed) == (None, None, words, "lstsq", 3)
    assert (row.baseline, row.value, row.failed) == (0.5, 0.5, False)
