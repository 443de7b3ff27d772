"""What vwbench reports about itself and its inputs: `zoo check`'s plain-text quality numbers,
a result's provenance (git commit state, library versions, machine), leaderboard collection of
oversized files, and `--check` specs a leaderboard cannot store."""

from __future__ import annotations

import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError


# vwbench zoo check (text) ----------------------------------------------------------------------


def test_zoo_check_prints_each_models_quality_numbers_to_three_places(monkeypatch) -> None:
    import vwbench.zoo.build as build

    report = {
        "mini-clip": {"zero_shot_acc": 0.91234, "per_split": {"train": 0.95, "test": 0.875, "n": 40}, "steps": 1200, "note": "x"},
        "mini-owlv2": {"map50": 0.5},
    }
    monkeypatch.setattr(build, "check_zoo", lambda root, only=None: report)
    res = CliRunner().invoke(app, ["zoo", "check", "--only", "mini-clip", "--only", "mini-owlv2"])
    assert res.exit_code == 0, res.output
    # floats to 3 places; a dict's float entries on one line; counts and text are not quality numbers
    assert res.stdout == "mini-clip\n  zero_shot_acc: 0.912\n  per_split: train 0.950, test 0.875\nmini-owlv2\n  map50: 0.500\n"


def test_zoo_check_json_keeps_every_number(monkeypatch) -> None:
    import json

    import vwbench.zoo.build as build

    report = {"mini-clip": {"zero_shot_acc": 0.91234, "steps": 1200, "log": Path("a/b.json")}}
    monkeypatch.setattr(build, "check_zoo", lambda root, only=None: report)
    res = CliRunner().invoke(app, ["zoo", "check", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout) == {"mini-clip": {"zero_shot_acc": 0.91234, "steps": 1200, "log": "a/b.json"}}


# provenance ----------------------------------------------------------------------------------------


class _Git:
    """A stand-in for ``subprocess.run`` answering the two git calls of ``git_commit``."""

    def __init__(self, head=(0, "abc123\n"), status=(0, "")) -> None:
        self.answers = {"rev-parse": head, "status": status}

    def __call__(self, args, **kwargs):
        answer = self.answers["rev-parse" if "rev-parse" in args else "status"]
        if isinstance(answer, BaseException):
            raise answer
        code, out = answer
        return SimpleNamespace(returncode=code, stdout=out, stderr="")


@pytest.mark.parametrize(
    ("git", "expected"),
    [
        (_Git(), "abc123"),
        (_Git(status=(0, " M benchmark/vwbench/cli.py\n")), "abc123-dirty"),
        (_Git(status=(128, "")), "abc123-unchecked"),
        (_Git(status=subprocess.TimeoutExpired("git", 5)), "abc123-unchecked"),
        (_Git(head=(128, "")), None),
        (_Git(head=OSError(2, "No such file or directory: 'git'")), None),
    ],
)
def test_git_commit_states_what_it_could_check(monkeypatch, git, expected) -> None:
    """A result cites the commit it was made from, '-dirty' when tracked files differ, and
    '-unchecked' when git could not say (never a claim of a clean tree it did not check)."""
    import vwbench.results.provenance as provenance

    if not (Path(provenance.vwbench.__file__).resolve().parents[2] / ".git").exists():
        pytest.skip("vwbench does not run from a git checkout here")
    monkeypatch.setattr(provenance.subprocess, "run", git)
    assert provenance.git_commit() == expected


def test_library_versions_show_a_missing_package_only_when_asked() -> None:
    from vwbench.results.provenance import library_versions

    versions = library_versions(("numpy", "surely-not-installed-pkg"))
    assert "python" in versions and "numpy" in versions and "surely-not-installed-pkg" not in versions
    assert library_versions(("surely-not-installed-pkg",), missing="not installed")["surely-not-installed-pkg"] == "not installed"


def test_cpu_model_falls_back_when_proc_cpuinfo_is_unreadable(monkeypatch) -> None:
    import vwbench.results.provenance as provenance

    real_read_text = Path.read_text

    def read_text(self, *args, **kwargs):
        if str(self) == "/proc/cpuinfo":
            raise PermissionError(13, "Permission denied")
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    monkeypatch.setattr(provenance.platform, "processor", lambda: "")
    monkeypatch.setattr(provenance.platform, "machine", lambda: "x86_64")
    assert provenance.cpu_model() == "x86_64"
    monkeypatch.setattr(provenance.platform, "machine", lambda: "")
    assert provenance.cpu_model() == "unknown"


def test_stage_times_are_listed_in_run_order_then_the_others() -> None:
    from vwbench.results.provenance import StageTimer, in_run_order

    assert list(in_run_order({"metrics": 1.0, "sae": 2.0, "data": 0.5, "train": 3.0, "probe": 1.5})) == ["data", "train", "metrics", "sae", "probe"]
    timer = StageTimer()
    for _ in range(2):
        with timer("train"):
            pass
    with pytest.raises(KeyError), timer("evaluate"):
        raise KeyError("boom")
    assert set(timer.stages) == {"train", "evaluate"} and all(v >= 0 for v in timer.stages.values())


# leaderboard collection and --check specs ------------------------------------------------------------


def test_an_oversized_result_file_is_skipped_with_its_reason(tmp_path: Path, monkeypatch) -> None:
    import importlib

    collect = importlib.import_module("vwbench.leaderboard.collect")  # the package's `collect` attribute is the function

    monkeypatch.setattr(collect, "MAX_RESULT_BYTES", 10)
    (tmp_path / "big.json").write_text('{"schema_version": 1, "padding": "................"}')
    with pytest.raises(UserError) as info:
        collect.collect(tmp_path)
    assert str(info.value) == f"--results {tmp_path}: no valid result files found (1 skipped, e.g. big.json: over 10 bytes)"


@pytest.mark.parametrize("spec", ["synth-coco:lstsq", "synth-coco", ""])
def test_a_check_spec_without_three_parts_is_refused(spec: str) -> None:
    from vwbench.leaderboard.check import check_section

    results = {"r1": {"dataset": "synth-coco", "task": "clip->owlv2", "transfer": "lstsq", "steps": 2, "n_trials": 1, "seed": 0, "value": 0.5}}
    with pytest.raises(UserError) as info:
        check_section(results, [spec], 0.02)
    assert str(info.value) == f"--check {spec!r}: use DATASET:TASK:TRANSFER (globs allowed, e.g. 'synth-coco:*:lstsq') or 'all'"


def test_a_study_check_spec_keeps_the_colon_of_its_task_name() -> None:
    from vwbench.leaderboard.check import check_section

    results = {
        "r1": {"dataset": "synth-imagenet", "task": "align:owlv2->clip", "transfer": "lstsq", "steps": 0, "n_trials": 1, "seed": 0, "value": 0.4,
               "study": {"family": "align"}},
        "r2": {"dataset": "synth-imagenet", "task": "probe:clip", "transfer": "probe", "steps": 0, "n_trials": 1, "seed": 0, "value": 0.9,
               "study": {"family": "probe"}},
    }
    section = check_section(results, ["synth-imagenet:align:owlv2->clip:lstsq", "synth-imagenet:align:*:lstsq"], 0.05)
    assert section["tolerance"] == 0.05 and section["device"] == "cpu"
    assert section["entries"] == [{"dataset": "synth-imagenet", "task": "align:owlv2->clip", "transfer": "lstsq", "steps": 0, "n_trials": 1, "seed": 0,
                                   "value": 0.4, "study": "align", "result": "r1"}]  # two overlapping specs store the run once
