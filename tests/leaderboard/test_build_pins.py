"""Pins on leaderboard building from hand-made entries (no runs): the result ids a board cites,
a study table's stored column order, the schema check on reading a board, what makes a superseded
run "another experiment" (settings, seed, submission), the supersede warning's wording, and
index.html's text colour and script hash."""

from __future__ import annotations

import base64
import hashlib
import html
import importlib
import json
import re
from types import SimpleNamespace

import pytest

from vwbench.errors import UserError
from vwbench.leaderboard.build import SCHEMA, _study_tables, build, read_leaderboard
from vwbench.leaderboard.collect import Collected, _differences, _rank_reason, _supersede, supersede_warnings
from vwbench.leaderboard.html_page import SORT_SCRIPT, render_html

from .test_rank_arithmetic import entry
from .test_render_pins import board


def full_entry(task: str, transfer: str, value: float, **kw):
    """:func:`entry` with every field a board's ``results`` record reads."""
    e = entry(task, transfer, value, **kw)
    e.result.per_concept, e.result.metrics = {"circle": value}, {}
    e.result.provenance = SimpleNamespace(
        vwbench_version="0", git_commit=None, task_version=1, created=e.result.provenance.created, device="cpu", dtype="float32",
        machine="m", dataset_manifest_hash="h", checkpoints=[], versions={}, settings={},
    )
    return e


def with_settings(e, settings: dict, seed: int | None = None):
    e.result.provenance.settings = settings
    if seed is not None:
        e.result.seed = seed
    return e


# ------------------------------------------------------------------ build


def test_result_ids_count_from_r1_in_entry_order() -> None:
    entries = [full_entry("clip->clip", "identity", 0.9), full_entry("owlv2->clip", "lstsq", 0.6), full_entry("owlv2->clip", "ridge", 0.5)]
    out = build(Collected(entries, []), "pins")
    assert list(out["results"]) == ["r1", "r2", "r3"]
    assert out["results"]["r2"]["file"] == entries[1].file
    rows = out["datasets"]["d"]["pairs"]["owlv2->clip"]["rows"]
    assert [(r["method"], r["result"]) for r in rows] == [("lstsq", "r2"), ("ridge", "r3")]
    assert out["datasets"]["d"]["pairs"]["owlv2->clip"]["in_domain"]["result"] == "r1"


def test_study_table_columns_keep_the_stored_order_then_first_seen() -> None:
    study = SimpleNamespace(
        tables={"per_layer": [{"acc": 0.5, "layer": 1}, {"layer": 2, "acc": 0.6, "note": "x"}], "plain": [{"b": 1, "a": 2}]},
        table_columns={"per_layer": ["layer", "acc"]},
    )
    tables = _study_tables(study)
    assert tables["per_layer"]["columns"] == ["layer", "acc", "note"]
    assert tables["plain"]["columns"] == ["b", "a"]  # none stored: the first row's order
    assert tables["per_layer"]["rows"] == study.tables["per_layer"]


def test_read_leaderboard_refuses_another_schema_naming_the_label(tmp_path) -> None:
    path = tmp_path / "leaderboard.json"
    path.write_text(json.dumps({**board(), "schema": "vwbench.leaderboard/0"}))
    with pytest.raises(UserError, match=r"^baseline: schema 'vwbench.leaderboard/0', this vwbench reads vwbench.leaderboard/1"):
        read_leaderboard(path, "baseline")
    path.write_text(json.dumps([1, 2]))
    with pytest.raises(UserError, match=r"^baseline: schema None"):
        read_leaderboard(path, "baseline")
    path.write_text(json.dumps(board()))
    assert read_leaderboard(path, "baseline")["schema"] == SCHEMA


# ------------------------------------------------------------------ superseded runs


HYPER = {"hyperparameters": {"lr": 0.01, "seed": 0, "steps": 10, "trials": 3}}


def test_seed_steps_and_trials_in_the_settings_are_not_a_settings_difference() -> None:
    kept = with_settings(full_entry("owlv2->clip", "lstsq", 0.5, file="a.json", steps=20), HYPER, seed=1)
    other = with_settings(full_entry("owlv2->clip", "lstsq", 0.5, file="b.json"), {"hyperparameters": {**HYPER["hyperparameters"], "seed": 7, "steps": 5, "trials": 2}}, seed=7)
    assert list(_differences(kept, other)) == ["seed"]  # the seed is reported once, on its own; steps and trials not at all
    other.result.provenance.settings = {"hyperparameters": {**HYPER["hyperparameters"], "lr": 0.1}}
    assert list(_differences(kept, other)) == ["seed", "settings"]


def test_a_result_without_recorded_settings_is_not_called_another_experiment() -> None:
    kept = with_settings(full_entry("owlv2->clip", "lstsq", 0.5, file="a.json", steps=20), HYPER)
    old = full_entry("owlv2->clip", "lstsq", 0.5, file="b.json")  # written before settings were kept
    assert _differences(kept, old) == {}
    winner, records = _supersede([old, kept])
    assert winner is kept and records[0].differs == [] and records[0].why == "the kept run has more steps (20 vs 10)"


def test_a_settings_difference_names_three_keys_and_counts_the_rest() -> None:
    mine = {"hyperparameters": {k: 1 for k in "abcde"}}
    theirs = {"hyperparameters": {k: 2 for k in "abcde"}}
    kept = with_settings(full_entry("owlv2->clip", "lstsq", 0.5, file="a.json", steps=20), mine)
    other = with_settings(full_entry("owlv2->clip", "lstsq", 0.5, file="b.json"), theirs)
    assert _differences(kept, other)["settings"] == (
        "settings hyperparameters.a 1 (kept) vs 2, hyperparameters.b 1 (kept) vs 2, hyperparameters.c 1 (kept) vs 2 and 2 more"
    )


def test_a_submission_recorded_on_one_side_only_is_a_submission_difference() -> None:
    kept = full_entry("owlv2->clip", "my-method", 0.5, file="a.json", steps=20)
    kept.result.transfer_params = {"submission": {"sha256": "b" * 64}}
    other = full_entry("owlv2->clip", "my-method", 0.5, file="b.json")
    assert _differences(kept, other) == {
        "submission": "another submitted transfer method or map under the same name (sha256 bbbbbbbbbbbb (kept) vs –)"
    }


def test_a_full_tie_says_the_later_file_name_is_kept() -> None:
    a, b = full_entry("owlv2->clip", "lstsq", 0.5, file="a.json"), full_entry("owlv2->clip", "lstsq", 0.5, file="b.json")
    assert _rank_reason(b, a) == "a tie on steps, trials and creation time: the later file name is kept"


def test_supersede_warnings_name_three_files_and_count_the_rest_only_for_other_experiments() -> None:
    def rec(file: str, differs: list[str]) -> dict:
        return {"file": file, "kept": "new.json", "why": "", "differs": differs, "dataset": "d", "task": "owlv2->clip", "transfer": "lstsq"}

    records = [rec(f"old{i}.json", ["seed"]) for i in range(5)] + [rec("short.json", [])]
    (line,) = supersede_warnings(records)
    assert line.startswith("warning: d owlv2->clip lstsq: kept new.json over old0.json, old1.json, old2.json and 2 more: ")
    assert "short.json" not in line and "their seeds differ" in line
    assert supersede_warnings([rec("short.json", [])]) == []  # only older or shorter: no warning


def test_collect_lists_superseded_runs_by_file_and_skips_links_fractures_and_infinite_cis(tmp_path, monkeypatch) -> None:
    """collect() on files whose parsed results are stubbed: a unit's superseded runs are listed by
    file name (not by rank), and a link, a delta-constrained run and an infinite CI are skipped."""
    collect_module = importlib.import_module("vwbench.leaderboard.collect")  # the package re-exports collect(), the function

    results = {
        "b.json": entry("owlv2->clip", "lstsq", 0.5, created="2020-01-01").result,  # the oldest
        "a.json": entry("owlv2->clip", "lstsq", 0.5, created="2021-01-01").result,
        "c.json": entry("owlv2->clip", "lstsq", 0.5, created="2022-01-01").result,  # kept: the newest
        "fracture.json": entry("owlv2->clip", "ridge", 0.5).result,
        "inf.json": entry("owlv2->clip", "knn", 0.5, ci95=(0.1, float("inf"))).result,
    }
    for r in results.values():
        r.fracture, r.per_concept = None, {}
    results["fracture.json"].fracture = {"delta": 0.5}
    for name in results:
        (tmp_path / name).write_text("{}")
    (tmp_path / "link.json").symlink_to(tmp_path / "a.json")
    monkeypatch.setattr(collect_module, "_read", lambda path: results[path.name])
    collected = collect_module.collect(tmp_path)
    assert [e.file for e in collected.entries] == ["c.json"]
    assert [(s.file, s.kept) for s in collected.superseded_by] == [("a.json", "c.json"), ("b.json", "c.json")]
    skipped = dict(collected.skipped)
    assert set(skipped) == {"fracture.json", "inf.json", "link.json"}
    assert skipped["link.json"] == "not a regular file"
    assert skipped["fracture.json"].startswith("a delta-constrained run (delta 0.5)")
    assert skipped["inf.json"] == "its value or CI is not a finite number (0.5, [0.1, inf])"


# ------------------------------------------------------------------ index.html


def test_cell_text_turns_white_only_above_0_65() -> None:
    """Black below 0.65, white above: at least 4.5:1 contrast over the whole scale (white on 0.56
    was 3.5:1; the worst now is 4.58:1, see test_the_cell_text_has_aa_contrast_everywhere)."""
    b = board()
    cells = b["datasets"]["synth-x"]["grids"][0]["cells"]
    cells["clip"]["owlv2"]["value"], cells["owlv2"]["owlv2"]["value"] = 0.65, 0.66
    page = render_html(b)
    assert 'fill="#000000">0.650</text>' in page and 'fill="#ffffff">0.660</text>' in page


def _luminance(hex_colour: str) -> float:
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(hex_colour[i : i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def test_the_cell_text_has_aa_contrast_everywhere() -> None:
    from vwbench.leaderboard.html_page import _colour, _text_colour

    for v in [i / 1000 for i in range(1001)] + [None]:
        darker, lighter = sorted((_luminance(_text_colour(v)), _luminance(_colour(v))))
        assert (lighter + 0.05) / (darker + 0.05) >= 4.5, (v, _text_colour(v), _colour(v))


def test_the_csp_allows_exactly_the_pages_own_script() -> None:
    page = render_html(board())
    scripts = re.findall(r"<script>(.*?)</script>", page, flags=re.S)
    assert scripts == [SORT_SCRIPT]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in html.unescape(page)
