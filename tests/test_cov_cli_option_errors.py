"""Bad options of `sweep`, `delta-sweep`, `analyze` and `check`, through the real entry point:
one line `error: ...` naming the option and the fix, exit code 2, nothing on stdout, and no
--out folder made (README: "Errors that you can fix ... print one line naming the problem and
the fix, and exit with code 2"). All are refused before any data or model is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.test_cli_pins import _main
from tests.test_early_option_checks import no_loading  # noqa: F401  (a fixture)


CASES = [
    (["sweep", "--suite", "mini", "--dataset", "coco"],
     "error: dataset(s) ['coco'] are not in suite 'mini' (it has: synth-coco, synth-dreambooth, synth-imagenet, synth-voc)"),
    (["sweep", "--suite", "mini", "--target", "generation", "--target", "dalle"],
     "error: target(s) ['dalle'] are not in suite 'mini' (its targets: clip, owlv2, sd)"),
    (["sweep", "--suite", "mini", "--pair", "sd->dalle"],
     "error: pair(s) ['sd->dalle'] are not in suite 'mini'; pairs are SOURCE->TARGET of sd, owlv2, clip"),
    (["sweep", "--suite", "mini", "--slurm-gpus", "1", "--slurm-time", "30"],
     "error: --slurm-gpus, --slurm-time apply to --executor slurm (not local); add --executor slurm or drop them"),
    (["sweep", "--suite", "mini", "--executor", "slurm", "--address", "auto"],
     "error: --address applies to --executor ray (not slurm); add --executor ray or drop --address"),
    (["sweep", "--suite", "mini", "--workers", "2"],
     "error: --workers applies to --executor ray or slurm; the local executor runs one job at a time"),
    (["sweep", "--suite", "mini", "--executor", "dask"], "error: unknown executor 'dask'; use one of: local, ray, slurm"),
    (["delta-sweep", "--task", "sd->sd", "--dataset", "synth-coco", "--deltas", "0.1,big"],
     "error: --deltas '0.1,big': expected comma-separated numbers like 0.1,0.2,0.5,1.0"),
    (["delta-sweep", "--task", "sd->sd", "--dataset", "synth-coco", "--deltas", "0.1,nan"],
     "error: --deltas '0.1,nan': expected one or more finite numbers >= 0"),
    (["delta-sweep", "--task", "sd->sd", "--task", "generation->generation", "--dataset", "synth-coco"],
     "error: --task sd->sd is given more than once (aliases included); give each task once"),
]


@pytest.mark.parametrize(("args", "expected"), CASES, ids=[" ".join(c[0][:4]) for c in CASES])
def test_bad_options_are_one_line_exit_2_and_make_no_out(tmp_path: Path, monkeypatch, capsys, no_loading, args, expected) -> None:
    out = tmp_path / "runs"
    code, stdout, err = _main(monkeypatch, capsys, *args, "--out", out)
    assert (code, stdout, err) == (2, "", expected + "\n")
    assert not out.exists()


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ("1,x", "error: --layers '1,x': expected comma-separated block numbers like 1,8,15,23\n"),
        (" , ", "error: --layers ' , ' names no block: give comma-separated block numbers like 1,8,15,23, or leave --layers out for four evenly spaced ones\n"),
    ],
)
@pytest.mark.parametrize("analysis", ["truncation", "tsne"])
def test_analyze_layers_are_checked_before_the_result_is_read(tmp_path: Path, monkeypatch, capsys, analysis, layers, expected) -> None:
    code, stdout, err = _main(monkeypatch, capsys, "analyze", analysis, "--result", tmp_path / "missing.json", "--layers", layers, "--out", tmp_path / "an" / "x")
    assert (code, stdout, err) == (2, "", expected)
    assert not (tmp_path / "an").exists()


def test_check_of_a_baseline_that_is_not_there(tmp_path: Path, monkeypatch, capsys) -> None:
    code, stdout, err = _main(monkeypatch, capsys, "check", "--baseline", tmp_path / "leaderboard.json", "--out", tmp_path / "re")
    assert (code, stdout) == (2, "")
    assert err == f"error: --baseline {tmp_path / 'leaderboard.json'}: no such file (a leaderboard.json written with `vwbench leaderboard --check ...`)\n"
    assert not (tmp_path / "re").exists()


def test_a_usage_error_names_the_subcommand_for_help(monkeypatch, capsys) -> None:
    code, stdout, err = _main(monkeypatch, capsys, "analyze", "tsne", "--k", "3")
    assert code == 2 and stdout == ""
    # click names the program from how Python was started (under pytest: 'python -m pytest.vwbench')
    assert err.count("\n") == 1 and err.startswith("error: No such option: --k; see '") and err.endswith("vwbench analyze tsne --help'\n")
