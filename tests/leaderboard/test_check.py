"""`vwbench check`: re-running a baseline's check subset passes on the real baseline and fails,
with a table, on one doctored to be better than the code."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vwbench.cli import app

from .test_leaderboard import make_board

SUBSET = ["synth-tiny:clip->owlv2:lstsq", "synth-tiny:owlv2->clip:anchor", "synth-tiny:clip->clip:identity"]


def test_check_passes_on_the_real_baseline_and_fails_on_a_doctored_one(tiny_results, tiny_tasks, tmp_path) -> None:
    out = tmp_path / "board"
    args = []
    for spec in SUBSET:
        args += ["--check", spec]
    board = make_board(tiny_results / "results", out, *args, "--tolerance", "0.01")
    check = board["check"]
    assert check["tolerance"] == 0.01 and len(check["entries"]) == 3
    assert {(e["task"], e["transfer"]) for e in check["entries"]} == {("clip->owlv2", "lstsq"), ("owlv2->clip", "anchor"), ("clip->clip", "identity")}
    baseline = out / "leaderboard.json"
    base_args = ["check", "--baseline", str(baseline), "--tasks-dir", str(tiny_tasks)]

    real = CliRunner().invoke(app, base_args)
    assert real.exit_code == 0, real.output
    assert "ok: 3 value(s) within tolerance" in real.output

    doctored = json.loads(baseline.read_text())
    doctored["check"]["entries"][0]["value"] += 0.25  # better than the code can do
    bad = tmp_path / "doctored.json"
    bad.write_text(json.dumps(doctored))
    res = CliRunner().invoke(app, ["check", "--baseline", str(bad), "--tasks-dir", str(tiny_tasks)])
    assert res.exit_code == 1, res.output
    assert "1 of 3 checked values dropped beyond their tolerance" in res.output
    e = doctored["check"]["entries"][0]
    # the table is on stdout; stderr (mixed into res.output) has the per-run progress lines
    table = res.stdout.split("dropped beyond their tolerance:", 1)[1].strip().splitlines()
    assert table[0].split() == ["dataset", "task", "transfer", "baseline", "now", "drop", "tolerance"]
    rows = [line.split() for line in table[2:]]
    assert len(rows) == 1, table  # only the doctored value dropped
    dataset, task, transfer, base, now, drop, tol = rows[0]
    assert (dataset, task, transfer) == (e["dataset"], e["task"], e["transfer"])
    assert abs(float(base) - e["value"]) <= 5e-5 and abs(float(drop) - (float(base) - float(now))) <= 1e-4 and float(drop) > 0.01
    assert tol == "0.0100"  # the tolerance stored with the baseline
    log = next(line for line in res.stderr.splitlines() if line.startswith(f"{e['dataset']} {e['task']} {e['transfer']}:"))
    assert "DROP" in log and "tolerance 0.0100" in log


def test_check_refuses_a_baseline_without_a_subset(tiny_results, tmp_path) -> None:
    out = tmp_path / "board"
    make_board(tiny_results / "results", out)
    res = CliRunner().invoke(app, ["check", "--baseline", str(out / "leaderboard.json")])
    assert res.exit_code != 0
    assert isinstance(res.exception, Exception) and "no check subset" in str(res.exception)


def test_check_spec_that_matches_nothing(tiny_results, tmp_path) -> None:
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(tiny_results / "results"), "--out", str(tmp_path / "b"), "--check", "synth-tiny:sd->sd:*"])
    assert res.exit_code != 0 and "matches no result" in str(res.exception)
    assert not (tmp_path / "b").exists()
