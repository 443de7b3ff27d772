"""Leaderboard arithmetic on hand-made entries: competition ranks and ``tied_with_best``, which
result is the in-domain ceiling, summary means over the cross pairs a method ran, row order on a
tie, and which of a unit's runs is kept (most steps, then most trials, then newest)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from vwbench.leaderboard.build import _dataset, _ranks
from vwbench.leaderboard.collect import Entry, _supersede


def entry(task: str, transfer: str, value: float, ci95=(0.0, 1.0), *, file: str | None = None, steps: int = 10,
          n_trials: int = 3, created: str = "2026-01-01T00:00:00+00:00", seed: int = 0) -> Entry:
    source, target = task.split("->")
    result = SimpleNamespace(
        task=task, source=source, target=target, transfer=transfer, value=value, ci95=tuple(ci95), metric="acc",
        dataset="d", steps=steps, n_trials=n_trials, seed=seed, transfer_params={}, study=None,
        provenance=SimpleNamespace(created=created, settings={}),
    )
    return Entry(result=result, file=file or f"{task}/{transfer}-{value}.json", sha256="0" * 64)


def test_ranks_are_competition_ranks_highest_first() -> None:
    rows = [{"value": v, "ci95": [v - 0.1, v + 0.1]} for v in (0.5, 0.9, 0.7, 0.9, 0.1)]
    _ranks(rows)
    assert [r["rank"] for r in rows] == [4, 1, 3, 1, 5]


def test_tied_with_best_is_ci_upper_reaching_best_lower_inclusive() -> None:
    best = {"value": 0.8, "ci95": [0.6, 0.9]}
    touching = {"value": 0.5, "ci95": [0.4, 0.6]}  # upper == best's lower: tied
    overlapping = {"value": 0.55, "ci95": [0.3, 0.7]}  # lower below best's lower, upper above it: tied
    inside = {"value": 0.7, "ci95": [0.65, 0.85]}  # lower above best's lower: tied (the best's CI reaches it)
    below = {"value": 0.3, "ci95": [0.1, 0.59]}
    rows = [below, touching, best, overlapping, inside]
    _ranks(rows)
    assert best["tied_with_best"] is True and touching["tied_with_best"] is True
    assert overlapping["tied_with_best"] is True and inside["tied_with_best"] is True
    assert below["tied_with_best"] is False


def test_rows_without_ci_get_no_tied_flag() -> None:
    rows = [{"mean": 0.2}, {"mean": 0.4}]
    _ranks(rows, key="mean")
    assert [r["rank"] for r in rows] == [2, 1] and all("tied_with_best" not in r for r in rows)


def ids_of(entries: list[Entry]) -> dict[str, str]:
    return {e.file: f"r{i + 1}" for i, e in enumerate(entries)}


def test_in_domain_ceiling_is_the_identity_run_and_only_on_cross_pairs() -> None:
    entries = [
        entry("clip->clip", "identity", 0.95),
        entry("clip->clip", "lstsq", 0.40),  # a method's x->x run is not the ceiling, wherever it is listed
        entry("owlv2->clip", "lstsq", 0.60),
    ]
    ds = _dataset(entries, ids_of(entries))
    assert ds["pairs"]["owlv2->clip"]["in_domain"]["value"] == 0.95
    assert ds["pairs"]["owlv2->clip"]["in_domain"]["method"] == "in-domain"
    assert ds["pairs"]["clip->clip"]["in_domain"] is None  # an in-domain pair has no ceiling row of itself


def test_summary_means_over_the_pairs_each_method_ran() -> None:
    entries = [
        entry("clip->clip", "identity", 0.9),
        entry("owlv2->clip", "lstsq", 0.6), entry("clip->owlv2", "lstsq", 0.2),
        entry("owlv2->clip", "ridge", 0.5),  # ridge ran one of the two cross pairs
    ]
    ds = _dataset(entries, ids_of(entries))
    summary = {row["method"]: row for row in ds["summary"]}
    assert summary["lstsq"]["mean"] == pytest.approx(0.4) and summary["lstsq"]["rank"] == 1
    assert summary["ridge"]["mean"] == pytest.approx(0.5) and summary["ridge"]["n_pairs"] == 1
    assert summary["ridge"]["rank"] is None
    # only clip has an in-domain run: the ceiling's mean is over the one pair that has it, unranked
    ceiling = summary["in-domain"]
    assert ceiling["mean"] == pytest.approx(0.9) and ceiling["n_pairs"] == 1 and ceiling["rank"] is None
    assert [row["method"] for row in ds["summary"]] == ["lstsq", "ridge", "in-domain"]  # the ceiling last


def test_the_in_domain_ceiling_is_not_ranked_among_the_methods() -> None:
    """It is what transfers are measured against (as in the pair tables), so a method below it
    keeps its rank: 1 here, not 2."""
    entries = [
        entry("clip->clip", "identity", 0.9), entry("owlv2->owlv2", "identity", 0.8),
        entry("owlv2->clip", "lstsq", 0.6), entry("clip->owlv2", "lstsq", 0.2),
        entry("owlv2->clip", "ridge", 0.5), entry("clip->owlv2", "ridge", 0.1),
    ]
    summary = _dataset(entries, ids_of(entries))["summary"]
    assert [(r["method"], r["rank"], r.get("ceiling", False)) for r in summary] == [("lstsq", 1, False), ("ridge", 2, False), ("in-domain", None, True)]
    assert summary[-1]["mean"] == pytest.approx(0.85)


def test_values_that_read_the_same_share_a_rank() -> None:
    """Ranks compare the 3 decimals the tables show: 0.3314 and 0.3306 both read 0.331."""
    entries = [entry("owlv2->clip", "lstsq", 0.3314), entry("owlv2->clip", "ridge", 0.3306), entry("owlv2->clip", "knn", 0.1 + 0.2),
               entry("owlv2->clip", "random", 0.3)]
    rows = {r["method"]: r["rank"] for r in _dataset(entries, ids_of(entries))["pairs"]["owlv2->clip"]["rows"]}
    assert rows == {"lstsq": 1, "ridge": 1, "knn": 3, "random": 3}


def test_tied_rows_are_listed_by_method_name() -> None:
    entries = [entry("owlv2->clip", m, 0.5) for m in ("ridge", "knn", "lstsq")] + [entry("owlv2->clip", "anchor", 0.7)]
    ds = _dataset(entries, ids_of(entries))
    rows = ds["pairs"]["owlv2->clip"]["rows"]
    assert [(r["method"], r["rank"]) for r in rows] == [("anchor", 1), ("knn", 2), ("lstsq", 2), ("ridge", 2)]


@pytest.mark.parametrize(
    ("a", "b", "kept"),
    [
        (dict(steps=20, n_trials=1, created="2020-01-01"), dict(steps=10, n_trials=9, created="2999-01-01"), "a"),  # steps first
        (dict(n_trials=5, created="2020-01-01"), dict(n_trials=3, created="2999-01-01"), "a"),  # then trials, over newer
        (dict(created="2999-01-01"), dict(created="2020-01-01"), "a"),  # then the newest
    ],
)
def test_supersede_keeps_most_steps_then_trials_then_newest(a, b, kept) -> None:
    ea, eb = entry("owlv2->clip", "lstsq", 0.5, file="a.json", **a), entry("owlv2->clip", "lstsq", 0.5, file="b.json", **b)
    for group in ([ea, eb], [eb, ea]):
        winner, records = _supersede(group)
        assert winner.file == f"{kept}.json" and [r.file for r in records] == ["b.json" if kept == "a" else "a.json"]


def test_grids_prefer_lstsq_and_keep_a_methods_own_diagonal() -> None:
    entries = [
        entry("clip->clip", "identity", 0.9),
        entry("owlv2->owlv2", "identity", 0.8),
        entry("clip->clip", "ridge", 0.3),  # ridge's own clip->clip run: its grid shows it, not the in-domain word
        entry("owlv2->clip", "ridge", 0.5), entry("owlv2->clip", "lstsq", 0.6), entry("owlv2->clip", "anchor", 0.4),
    ]
    ids = ids_of(entries)
    grids = {g["method"]: g for g in _dataset(entries, ids)["grids"]}
    assert [g["method"] for g in _dataset(entries, ids)["grids"]] == ["lstsq", "anchor", "ridge"]
    assert grids["lstsq"]["models"] == ["owlv2", "clip"]
    assert grids["ridge"]["cells"]["clip"]["clip"] == {"value": 0.3, "result": ids[entries[2].file], "in_domain": True}
    assert grids["lstsq"]["cells"]["clip"]["clip"] == {"value": 0.9, "result": ids[entries[0].file], "in_domain": True}
    assert grids["lstsq"]["cells"]["owlv2"] == {
        "owlv2": {"value": 0.8, "result": ids[entries[1].file], "in_domain": True},
        "clip": {"value": 0.6, "result": ids[entries[4].file], "in_domain": False},
    }


def study_entry(family: str, task: str, transfer: str, value: float, file: str) -> Entry:
    e = entry("clip->clip", transfer, value, file=file)
    e.result.task, e.result.dataset, e.result.metrics = task, "d", {}
    e.result.study = SimpleNamespace(family=family, key="k", encoders=[], tables={}, table_columns={}, settings={})
    return e


def test_paired_study_ranks_methods_within_each_task_and_others_across_encoders() -> None:
    from vwbench.leaderboard.build import _studies

    entries = [
        study_entry("align", "align:owlv2->clip", "lstsq", 0.9, "a1"), study_entry("align", "align:owlv2->clip", "ridge", 0.7, "a2"),
        study_entry("align", "align:sd->clip", "lstsq", 0.5, "a3"), study_entry("align", "align:sd->clip", "ridge", 0.6, "a4"),
        study_entry("probe", "probe:clip", "clip", 0.4, "p1"), study_entry("probe", "probe:owlv2", "owlv2", 0.8, "p2"),
    ]
    out = _studies(entries, {e.file: e.file for e in entries})
    assert list(out) == ["probe", "align"]  # the families' own order
    align = [(r["task"], r["method"], r["rank"]) for r in out["align"]["datasets"]["d"]["rows"]]
    assert align == [("align:owlv2->clip", "lstsq", 1), ("align:owlv2->clip", "ridge", 2), ("align:sd->clip", "ridge", 1), ("align:sd->clip", "lstsq", 2)]
    probe = [(r["task"], r["rank"]) for r in out["probe"]["datasets"]["d"]["rows"]]
    assert probe == [("probe:owlv2", 1), ("probe:clip", 2)]
