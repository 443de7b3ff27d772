"""Bad input found after a command has made its ``--out`` folder: the rule (README "Errors that
you can fix ... print one line naming the problem and the fix, and exit with code 2"; CHANGELOG:
"a ... that fails ... after making `--out` removes the folder again when nothing was written in
it", "`zoo report --root` ... is a one-line error, before `--out` is made") is one line, exit 2,
and no folder left behind."""

from __future__ import annotations


import pytest

from tests.test_cli_pins import _main


def _one_error_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_zoo_report_with_an_unreadable_board_is_one_line_and_makes_no_out_folder(tmp_path, monkeypatch, capsys):
    """A --board that exists but is no leaderboard.json: the error names it and says how to fix
    it; the --out folder (not there before) must not be left behind, empty, by the failed command
    (the board was read only after --out had been made)."""
    board = tmp_path / "board.json"
    board.write_text("{not json")
    out = tmp_path / "card" / "mini"
    code, stdout, err = _main(monkeypatch, capsys, "zoo", "report", "--out", out, "--board", board)
    line = _one_error_line(err)
    assert code == 2 and stdout == ""
    assert str(board) in line and "not a readable leaderboard.json" in line and "write it again with `vwbench leaderboard`" in line
    assert not (tmp_path / "card").exists(), sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))


def test_zoo_report_with_a_missing_board_names_it_before_anything(tmp_path, monkeypatch, capsys):
    out = tmp_path / "card"
    code, _, err = _main(monkeypatch, capsys, "zoo", "report", "--out", out, "--board", tmp_path / "nope.json")
    assert code == 2
    assert _one_error_line(err) == f"error: no leaderboard at {tmp_path / 'nope.json'}: write one with `vwbench leaderboard --out DIR` or leave --board out"
    assert not out.exists()


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--sections", "suite", "--dataset", "bogus"], "error: dataset(s) ['bogus'] are not in suite 'mini' (it has: synth-coco, "),
        (["--sections", "classification", "--train-dataset", "bogus"], "error: unknown dataset 'bogus' (known: "),
    ],
    ids=["suite-dataset", "train-dataset"],
)
def test_bench_with_an_unknown_dataset_is_one_line_before_any_work_and_makes_no_out_folder(tmp_path, monkeypatch, capsys, args, fragment):
    """`vwbench bench` with a dataset that does not exist (or is not in the suite): refused in one
    line before anything is measured (CHANGELOG: bad options "fail here, before any work"), and
    nothing may be left under --out (a new folder). (The dataset was looked up after --out had been
    made; with --train-dataset the first section even started before the error.)"""
    out = tmp_path / "perf" / "perf.md"
    code, stdout, err = _main(monkeypatch, capsys, "bench", *args, "--quick", "--device", "cpu", "--out", out)
    assert code == 2 and stdout == ""
    assert _one_error_line(err).startswith(fragment)
    assert not (tmp_path / "perf").exists(), sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*"))


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        (["--project", "gpu"], "unknown --project 'gpu'; the one projection is 'paper'"),
        (["--costs", "perf.json"], "--costs goes with --project paper"),
        (["--sections", "suite", "--suite-run", "--dataset", "synth-voc"], "--suite-run sweeps every dataset of the suite"),
        (["--tier", "mini"], "unknown --tier 'mini'; use 'paper'"),
        (["--tier", "paper", "--sections", "suite"], "drop 'suite' from --sections"),
        (["--project", "paper", "--sections", "map"], "needs the three training sections"),
        (["--tier", "paper", "--device", "cpu"], "it needs --device cuda"),
        (["--device", "tpu"], "unknown --device 'tpu'; use auto, cpu or cuda"),
        (["--sections", "map,speed"], "unknown --sections"),
    ],
)
def test_bench_option_conflicts_are_one_line_errors_before_any_work(tmp_path, monkeypatch, capsys, args, fragment):
    out = tmp_path / "new" / "perf.md"
    code, stdout, err = _main(monkeypatch, capsys, "bench", *args, "--out", out)
    assert code == 2 and stdout == ""
    assert fragment in _one_error_line(err)
    assert not (tmp_path / "new").exists()


def test_bench_out_must_be_a_markdown_file(tmp_path, monkeypatch, capsys):
    code, _, err = _main(monkeypatch, capsys, "bench", "--sections", "map", "--out", tmp_path / "perf.txt")
    assert code == 2
    assert _one_error_line(err) == f"error: --out {tmp_path / 'perf.txt'}: give a markdown file name ending in .md (the .json goes beside it)"
    assert list(tmp_path.iterdir()) == []


def _synthetic_bench(check_ok: bool) -> dict:
    return {
        "sections": {
            "classification": {"ratio": 61.23, "median_step_ratio": 58.0, "target": 50, "meets_target": True,
                               "check": {"max_abs_diff": 3.1e-06, "ok": True}},
            "map": {"ratio": 4.2, "target": 5, "meets_target": False,
                    "check": {"faster_coco_eval": {"map": 0.5}, "pycocotools": {"map": 0.5 if check_ok else 0.49}, "ok": check_ok}},
            "suite": {"ratio": None, "cold": {"wall_s": 123.44}, "warm": {"wall_s": 6.05}},
        },
        "memory": [
            {"process": "classification / vwbench", "peak_rss_mb": 5000.4, "over_cpu_target": True, "cuda_peak_mb": None},
            {"process": "map / reference", "peak_rss_mb": 300.0, "over_cpu_target": False, "cuda_peak_mb": 812.0},
            {"process": "suite / cold", "peak_rss_mb": None, "over_cpu_target": False},
        ],
    }


@pytest.mark.parametrize("check_ok", [True, False])
def test_bench_prints_one_line_per_section_and_fails_when_the_sides_disagree(tmp_path, monkeypatch, capsys, check_ok):
    """The terminal summary of `vwbench bench` (ratios, targets, checks, peak memory) and its exit
    code: 1 with one error line when the two sides of a section did not compute the same numbers."""
    import vwbench.perf.bench as bench
    import vwbench.perf.report as report

    out = tmp_path / "perf.md"
    monkeypatch.setattr(bench, "run_bench", lambda options, command="vwbench bench": _synthetic_bench(check_ok))
    monkeypatch.setattr(report, "write_report", lambda results, path: (path, path.with_suffix(".json")))
    code, stdout, err = _main(monkeypatch, capsys, "bench", "--sections", "classification,map,suite", "--device", "cpu", "--out", out)
    verdict = "identical" if check_ok else "DIFFERENT"
    other = "0.5" if check_ok else "0.49"
    assert stdout.splitlines() == [
        "classification: 61.2x (median-based 58.0x) (target >= 50x: met); max loss diff 3.10e-06 (ok)",
        f"map: 4.2x (target >= 5x: NOT met); faster-coco-eval {{'map': 0.5}} vs pycocotools {{'map': {other}}} ({verdict})",
        "suite: no ratio; cold 123.4 s, warm 6.0 s",
        "peak memory classification / vwbench: 5000 MiB  OVER 4 GiB",
        "peak memory map / reference: 300 MiB, CUDA 812 MiB",
        f"wrote {out} and {out.with_suffix('.json')}",
    ]
    if check_ok:
        assert code == 0 and "error" not in err
    else:
        assert code == 1
        assert err.strip().splitlines()[-1] == f"error: the two sides of map did not compute the same numbers (see {out})"
