"""Details a new user met in a walkthrough of the less-travelled commands: analysis file names with
a dot, `zoo check` with --json and with a model named as the tasks name it, `validate` of a file that
is no submission, `bench --project` with a missing --costs file."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.analysis import stem_file
from vwbench.cli import app
from vwbench.errors import UserError


@pytest.mark.parametrize(
    ("stem", "suffix", "expected"),
    [
        ("an/run-0.5-delta", ".json", "an/run-0.5-delta.json"),  # with_suffix gave an/run-0.json
        ("an/run-0.5-delta", ".png", "an/run-0.5-delta.png"),
        ("an/tsne", ".png", "an/tsne.png"),
        ("an/tsne.json", ".png", "an/tsne.png"),  # a stem given with the file's suffix
        ("an/tsne.png", ".json", "an/tsne.json"),
    ],
)
def test_an_analysis_file_keeps_every_dot_of_its_stem(stem: str, suffix: str, expected: str) -> None:
    assert stem_file(Path(stem), suffix) == Path(expected)


def test_zoo_check_hashes_only_prints_json_when_asked() -> None:
    import json

    res = CliRunner().invoke(app, ["zoo", "check", "--hashes-only", "--json", "--only", "mini-clip"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"mini-clip": {"hashes": "ok", "folder": str(Path(__import__("vwbench").__file__).resolve().parent / "zoo" / "mini-clip")}}


def test_zoo_check_suggests_the_zoo_name_of_a_family() -> None:
    res = CliRunner().invoke(app, ["zoo", "check", "--hashes-only", "--only", "clip"])
    assert isinstance(res.exception, UserError) and str(res.exception).startswith("unknown zoo model(s) ['clip']; did you mean mini-clip? (choose from ")


def test_zoo_check_of_an_unbuilt_model_says_how_to_build_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VWBENCH_ZOO_BUILD", str(tmp_path / "build"))
    res = CliRunner().invoke(app, ["zoo", "check", "--hashes-only", "--only", "mini-sd-text"])
    assert isinstance(res.exception, UserError)
    assert str(res.exception) == (f"mini-sd-text is not shipped and was not built here (no {tmp_path / 'build' / 'mini-sd-text' / 'manifest.json'}): "
                                  "build it with `vwbench zoo train --only mini-sd-text`")


def test_validate_of_a_file_that_is_no_submission_says_what_to_give(tmp_path: Path) -> None:
    path = tmp_path / "notes.json"
    path.write_text('{"a": 1}' * 10)
    res = CliRunner().invoke(app, ["validate", str(path)])
    assert res.exit_code == 1
    assert "notes.json is not a submission: give a transfer-method folder (with submission.yaml), or a linear-map or embeddings .safetensors file" in res.output
    assert "-byte header" not in res.output  # the JSON's bytes read as a header length said nothing useful


def test_bench_project_with_a_missing_costs_file_names_it(tmp_path: Path) -> None:
    res = CliRunner().invoke(app, ["bench", "--project", "paper", "--costs", str(tmp_path / "nope.json"), "--out", str(tmp_path / "perf.md")])
    assert isinstance(res.exception, UserError) and str(res.exception) == f"--costs {tmp_path / 'nope.json'}: no such file (give a perf.json written by `vwbench bench`)"
    res = CliRunner().invoke(app, ["bench", "--render", "--project", "paper", "--out", str(tmp_path / "perf.md")])
    assert isinstance(res.exception, UserError) and "run them one at a time" in str(res.exception)


def test_leaderboard_tolerance_without_check_is_refused(tmp_path: Path) -> None:
    """It sets what `vwbench check` accepts for the runs --check stores: alone it did nothing
    (a negative one was accepted there, and refused with --check)."""
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(tmp_path), "--out", str(tmp_path / "board"), "--tolerance", "-1"])
    assert isinstance(res.exception, UserError) and str(res.exception).startswith("--tolerance goes with --check")
    assert not (tmp_path / "board").exists()


@pytest.mark.parametrize(("option", "line"), [
    ("--bogus", "error: No such option: --bogus; see '"),
    ("--stpes", "error: No such option: --stpes (Possible options: --steps); see '"),
])
def test_an_unknown_option_suggests_only_near_misses(option: str, line: str, monkeypatch, capsys) -> None:
    """click offered `--out` for `--bogus` (anything 60% alike)."""
    from tests.test_cli_pins import _main

    code, _, err = _main(monkeypatch, capsys, "run", option, "3")
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(line) and err.rstrip().endswith(" run --help'"), err
