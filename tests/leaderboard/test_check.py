"""`vwbench check`: re-running a baseline's check subset passes on the real baseline and fails,
with a table, on one doctored to be better than the code."""

from __future__ import annotations

import json

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
    # progress: a line as each run starts, then as each of its stages starts, before its result line
    lines = real.stderr.splitlines()
    start = lines.index("check 1/3: synth-tiny clip->owlv2 lstsq (steps 2, trials 2, seed 0, threads 1) ...")
    done = next(i for i, line in enumerate(lines) if line.startswith("synth-tiny clip->owlv2 lstsq: baseline"))
    stages = [line for line in lines[start + 1:done] if line.startswith("check 1/3: synth-tiny clip->owlv2 lstsq: ")]
    assert any(": train " in line for line in stages) and any(": evaluate on owlv2" in line for line in stages), lines
    assert [line for line in lines if line.endswith(") ...")][1:] == [
        "check 2/3: synth-tiny owlv2->clip anchor (steps 2, trials 2, seed 0, threads 1) ...", "check 3/3: synth-tiny clip->clip identity (steps 2, trials 2, seed 0, threads 1) ...",
    ]

    doctored = json.loads(baseline.read_text())
    doctored["check"]["entries"][0]["value"] += 0.25  # better than the code can do
    bad = tmp_path / "doctored.json"
    bad.write_text(json.dumps(doctored))
    res = CliRunner().invoke(app, ["check", "--baseline", str(bad), "--tasks-dir", str(tiny_tasks)])
    assert res.exit_code == 1, res.output
    assert "1 of 3 checked values moved beyond their tolerance" in res.output
    e = doctored["check"]["entries"][0]
    # the table is on stdout; stderr (mixed into res.output) has the per-run progress lines
    table = res.stdout.split("on purpose):", 1)[1].strip().splitlines()
    assert table[0].split() == ["dataset", "task", "transfer", "baseline", "now", "change", "tolerance"]
    rows = [line.split() for line in table[2:]]
    assert len(rows) == 1, table  # only the doctored value dropped
    dataset, task, transfer, base, now, drop, tol = rows[0]
    assert (dataset, task, transfer) == (e["dataset"], e["task"], e["transfer"])
    assert abs(float(base) - e["value"]) <= 5e-5 and abs(-float(drop) - (float(base) - float(now))) <= 1e-4 and -float(drop) > 0.01
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


def test_overlapping_specs_store_each_run_once(tiny_results, tmp_path) -> None:
    board = make_board(tiny_results / "results", tmp_path / "board", "--check", "all", "--check", SUBSET[0])
    ids = [e["result"] for e in board["check"]["entries"]]
    assert len(ids) == len(set(ids)) == len(board["results"])


def test_a_tolerance_that_is_not_a_finite_number_is_refused(tiny_results, tmp_path) -> None:
    for bad in ("nan", "inf", "-0.1"):
        res = CliRunner().invoke(app, ["leaderboard", "--results", str(tiny_results / "results"), "--out", str(tmp_path / bad), "--check", "all", "--tolerance", bad])
        assert res.exit_code != 0 and "--tolerance" in str(res.exception), (bad, res.output)
        assert not (tmp_path / bad / "leaderboard.json").exists()


def test_a_drop_equal_to_the_tolerance_passes() -> None:
    from vwbench.leaderboard.check import CheckRow

    assert not CheckRow("d", "t", "m", baseline=0.5, value=0.48, tolerance=0.02).failed  # 0.5 - 0.48 = 0.020000000000000018
    assert CheckRow("d", "t", "m", baseline=0.5, value=0.479, tolerance=0.02).failed


def test_a_malformed_check_section_or_a_used_out_is_a_one_line_error(tiny_results, tiny_tasks, tmp_path) -> None:
    board = make_board(tiny_results / "results", tmp_path / "board", "--check", SUBSET[0])
    good = board["check"]
    damaged = {
        "entry without dataset": {**good, "entries": [{k: v for k, v in good["entries"][0].items() if k != "dataset"}]},
        "entries not a list": {**good, "entries": "abc"},
        "tolerance a string": {**good, "tolerance": "0.1"},
    }
    for label, check in damaged.items():
        path = tmp_path / f"{label}.json"
        path.write_text(json.dumps({**board, "check": check}))
        res = CliRunner().invoke(app, ["check", "--baseline", str(path), "--tasks-dir", str(tiny_tasks)])
        assert res.exit_code != 0 and "malformed check section" in str(res.exception), (label, res.output)
    path = tmp_path / "list.json"
    path.write_text(json.dumps({**board, "check": ["x"]}))
    res = CliRunner().invoke(app, ["check", "--baseline", str(path)])
    assert res.exit_code != 0 and "no check subset" in str(res.exception)
    # a re-run must not read a stored run back: an --out that already holds runs is refused
    res = CliRunner().invoke(app, ["check", "--baseline", str(tmp_path / "board" / "leaderboard.json"), "--tasks-dir", str(tiny_tasks), "--out", str(tiny_results)])
    assert res.exit_code != 0 and "not empty" in str(res.exception)
