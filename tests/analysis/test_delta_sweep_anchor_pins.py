"""Pins of the delta sweep's stored ``anchors`` (a mutation-round survivor): the table JSON
(``sweeps/<dataset>/delta-<tasks>.json``) records the --anchors the sweep ran with, as given
(``null`` for the dataset's own anchor words), and they are the anchors its results were trained
with. Zero training steps and one trial keep each sweep to about a second on the tiny models."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.analysis.test_fracture_and_analyses import invoke
from vwbench.results import read_result
from vwbench.training.fracture import parse_anchors

CONCEPTS = ["circle", "square", "triangle"]  # synth-tiny's; their anchor words are their names


def _sweep(tiny_tasks: Path, out: Path, *anchors: str) -> tuple[dict, list]:
    args = ["delta-sweep", "--task", "clip->clip", "--dataset", "synth-tiny", "--deltas", "0.5,1", "--steps", "0", "--trials", "1",
            "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu", "--threads", "1"]
    for value in anchors:
        args += ["--anchors", value]
    invoke(*args)
    table = json.loads((out / "sweeps" / "synth-tiny" / "delta-clip-to-clip.json").read_text())
    return table, [read_result(Path(r["result"])) for r in table["rows"]]


@pytest.mark.parametrize("anchors, used", [
    (["square=ring", "circle=star"], {"circle": "star", "square": "ring", "triangle": "triangle"}),
    (["ring"], {"circle": "ring", "square": "ring", "triangle": "ring"}),
])
def test_delta_sweep_table_stores_the_anchors_it_ran_with(tiny_tasks, tmp_path, anchors, used) -> None:
    table, results = _sweep(tiny_tasks, tmp_path, *anchors)
    assert table["anchors"] == anchors  # every value, in the order given
    assert [r.fracture["delta"] for r in results] == [0.5, 1.0]
    for result in results:  # what the table says is what the words were trained with
        assert result.fracture["anchors"] == used == parse_anchors(table["anchors"], CONCEPTS, {c: c for c in CONCEPTS})


def test_delta_sweep_table_stores_null_anchors_for_the_datasets_own(tiny_tasks, tmp_path) -> None:
    table, results = _sweep(tiny_tasks, tmp_path)
    assert "anchors" in table and table["anchors"] is None
    assert table["dataset"] == "synth-tiny" and len(results) == 2
    assert all(r.fracture["anchors"] == {c: c for c in CONCEPTS} for r in results)


def test_a_later_sweep_with_other_anchors_stores_its_own(tiny_tasks, tmp_path) -> None:
    """The table's name holds only the tasks: a sweep with other anchors takes it over, and its
    anchors (not the earlier sweep's) are stored with its rows."""
    _sweep(tiny_tasks, tmp_path, "ring")
    table, results = _sweep(tiny_tasks, tmp_path, "triangle=star")
    assert table["anchors"] == ["triangle=star"]
    assert len(results) == 2 and all(r.fracture["anchors"] == {"circle": "circle", "square": "square", "triangle": "star"} for r in results)
