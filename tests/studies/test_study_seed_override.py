"""`vwbench run --task FAMILY:... --seed N` is bounded like a study file's seed: a seed that numpy
or torch would refuse mid-run is a one-line error before any checkpoint or image is loaded."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError

REPO_TASKS = Path(__file__).resolve().parents[2] / "tasks"


@pytest.fixture
def no_checkpoint_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Resolving a study's checkpoint fails the test: the seed must be refused before."""
    from vwbench.studies.encoders import EncoderCache

    def resolve(*args, **kwargs):
        raise AssertionError("a checkpoint was resolved before the seed was checked")

    monkeypatch.setattr(EncoderCache, "resolve", resolve)


@pytest.mark.parametrize(
    ("seed", "expected"),
    [
        ("-1", "--seed -1: Input should be greater than or equal to 0"),  # numpy refuses it in the probes
        (str(2**64), f"--seed {2**64}: Input should be less than or equal to {2**64 - 1}"),  # torch takes 64 bits
    ],
)
def test_a_bad_seed_override_is_refused_before_anything_loads(tmp_path: Path, no_checkpoint_loads, seed: str, expected: str) -> None:
    args = ["run", "--task", "probe:clip", "--dataset", "synth-imagenet", f"--seed={seed}", "--tasks-dir", str(REPO_TASKS), "--out", str(tmp_path / "runs"), "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert isinstance(res.exception, UserError), (res.output, repr(res.exception))
    message = str(res.exception)
    assert "\n" not in message and message.startswith(expected), message
    assert not (tmp_path / "runs").exists()  # refused before --out was made


def test_an_sae_seed_whose_stability_runs_pass_torchs_range_is_refused_before_training(tmp_path: Path, no_checkpoint_loads) -> None:
    """The SAE study trains its reference again at seed+1 .. seed+n_seeds-1: a seed within torch's
    range whose followers are not was a traceback after the sweep had trained."""
    args = ["run", "--task", "sae:clip", "--dataset", "synth-voc", f"--seed={2**64 - 1}", "--tasks-dir", str(REPO_TASKS), "--out", str(tmp_path / "runs"), "--device", "cpu"]
    res = CliRunner().invoke(app, args)
    assert isinstance(res.exception, UserError), (res.output, repr(res.exception))
    assert str(res.exception).startswith(f"seed {2**64 - 1} with n_seeds=") and "give a seed of at most" in str(res.exception)
    assert not (tmp_path / "runs").exists()
