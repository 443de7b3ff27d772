"""What a researcher's walk through the fracturing experiment found: a delta run's summary did not
say it was one, a bad anchor word did not say whose tokenizer or what to do, and an analysis given
a file that is not a result spoke of a "schema version None"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.results import read_result


def test_a_delta_runs_summary_names_its_delta(tiny_tasks, tmp_path) -> None:
    args = ["run", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path), "--device", "cpu", "--steps", "2"]
    res = CliRunner().invoke(app, [*args, "--delta", "0.5"])
    assert res.exit_code == 0, res.output
    assert "2 steps, delta 0.5)" in res.output
    plain = CliRunner().invoke(app, args)
    assert plain.exit_code == 0 and "2 steps)" in plain.output and "steps, delta" not in plain.output


def test_an_anchor_that_is_not_one_token_says_whose_tokenizer_and_what_to_do(tiny_tasks, tmp_path) -> None:
    res = CliRunner().invoke(app, ["run", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path / "o"),
                                   "--device", "cpu", "--delta", "0.5", "--anchors", "circle=notaword123"])
    assert isinstance(res.exception, UserError), res.output
    message = str(res.exception)
    assert message.startswith("anchor words of the clip source model: ") and message.endswith("; pick a word that is one token (--anchors CONCEPT=WORD)")


def test_a_json_that_is_not_a_result_is_named_as_such(tmp_path) -> None:
    for payload in ({"concepts": ["a"], "train": []}, ["a list"]):
        path = tmp_path / "vwbench_split.json"
        path.write_text(json.dumps(payload))
        with pytest.raises(UserError) as info:
            read_result(path)
        assert str(info.value) == f"{path}: not a vwbench result file (it has no schema_version); give a result JSON (`vwbench run` prints its path; they sit under OUT/results/)"
    # a result of another schema version keeps its own message
    path.write_text(json.dumps({"schema_version": 99}))
    with pytest.raises(UserError, match="result schema version 99, this vwbench reads version 1"):
        read_result(path)
