"""Integer settings have upper bounds: a task or study file asking for 10^10 steps or a million
trials is refused with its file and line before anything runs, and so is a run's --steps / --trials
/ --seed override (one line, exit code 2 from the CLI)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.registry import TaskRegistry
from vwbench.registry.schema import EvalSettings, Hyperparameters, with_overrides

from .conftest import edit, line_of
from .test_loader import load_error


@pytest.mark.parametrize(
    ("key", "value", "bound"),
    [
        ("steps", "10000000000", "100000"),
        ("trials", "1000000", "1000"),
        ("batch_size", "100000000", "1024"),
        ("n_vectors", "76", "75"),
        ("images_per_concept", "100000000", "10000"),
        ("seed", "18446744073709551616", "18446744073709551615"),
    ],
)
def test_an_absurd_hyperparameter_is_refused_with_file_and_line(tasks_copy: Path, key: str, value: str, bound: str) -> None:
    path = tasks_copy / "datasets" / "voc.yaml"
    path.write_text(path.read_text() + f"settings:\n  hyperparameters:\n    {key}: {value}\n")
    message = load_error(tasks_copy)
    assert f"datasets/voc.yaml:{line_of(path, f'{key}: {value}')}: hyperparameters.{key}: Input should be less than or equal to {bound}" in message


@pytest.mark.parametrize(
    ("key", "value", "bound"),
    [("generations_per_word", "100000000", "1000"), ("inference_steps", "1001", "1000"), ("batch_size", "100000000", "1024")],
)
def test_an_absurd_eval_setting_is_refused(tasks_copy: Path, key: str, value: str, bound: str) -> None:
    path = tasks_copy / "datasets" / "voc.yaml"
    path.write_text(path.read_text() + f"settings:\n  eval:\n    {key}: {value}\n")
    message = load_error(tasks_copy)
    assert f"datasets/voc.yaml:{line_of(path, f'{key}: {value}')}: eval.{key}: Input should be less than or equal to {bound}" in message


def test_an_absurd_held_out_count_is_refused(tasks_copy: Path) -> None:
    path = tasks_copy / "datasets" / "_synth.yaml"
    edit(path, "heldout_per_concept: 25", "heldout_per_concept: 100000000")
    message = load_error(tasks_copy)
    assert f"_synth.yaml:{line_of(path, 'heldout_per_concept')}: heldout_per_concept: Input should be less than or equal to 10000" in message


def test_the_bounds_themselves_are_accepted(tasks_copy: Path) -> None:
    path = tasks_copy / "models" / "mini.yaml"
    edit(path, "    steps: 200\n    trials: 3\n", "    steps: 100000\n    trials: 1000\n    n_vectors: 75\n")
    edit(path, "    inference_steps: 20\n", "    inference_steps: 1000\n")
    task = TaskRegistry.from_dir(tasks_copy).get("clip->sd", "synth-coco")
    assert (task.hyperparameters.steps, task.hyperparameters.trials, task.hyperparameters.n_vectors) == (100000, 1000, 75)
    assert task.eval.inference_steps == 1000


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("probe.yaml", "  epochs: 60", "  epochs: 1000000000", "epochs: Input should be less than or equal to 10000"),
        ("probe.yaml", "  hidden: 2048", "  hidden: 100000000", "hidden: Input should be less than or equal to 65536"),
        ("probe.yaml", "  seed: 0", "  seed: -1", "seed: Input should be greater than or equal to 0"),
        ("probe.yaml", "  train_per_concept: 16 ", "  train_per_concept: 100000000 ", "train_per_concept: Input should be less than or equal to 10000"),
        ("align.yaml", "  probe_steps: 100", "  probe_steps: 10000000000", "probe_steps: Input should be less than or equal to 1000000"),
        ("sae.yaml", "  steps: 1000 ", "  steps: 10000000000 ", "steps: Input should be less than or equal to 1000000"),
        ("sae.yaml", "  n_seeds: 3", "  n_seeds: 1000000", "n_seeds: Input should be less than or equal to 100"),
        ("sae.yaml", "  expansion: 4.0", "  expansion: 1.0e6", "expansion: Input should be less than or equal to 64"),
        ("sae.yaml", "  batch_size: 256", "  batch_size: 100000000", "batch_size: Input should be less than or equal to 65536"),
    ],
)
def test_an_absurd_study_setting_is_refused_with_file_and_line(tasks_copy: Path, file: str, old: str, new: str, expected: str) -> None:
    from vwbench.registry.studies import StudyRegistry

    path = tasks_copy / "studies" / file
    edit(path, old, new)
    with pytest.raises(UserError) as info:
        StudyRegistry.from_dir(tasks_copy)
    message = str(info.value)
    assert "\n" not in message and f"studies/{file}:{line_of(path, new.strip())}: {expected}" in message


def test_a_command_line_override_is_checked_like_a_task_file() -> None:
    hp = Hyperparameters()
    assert with_overrides(hp, {"steps": 5, "trials": None, "seed": 3}) == hp.model_copy(update={"steps": 5, "seed": 3})
    for option, value, bound in (("steps", 10**10, "100000"), ("trials", 10**6, "1000"), ("seed", 2**64, "18446744073709551615")):
        with pytest.raises(UserError) as info:
            with_overrides(hp, {option: value})
        assert str(info.value).startswith(f"--{option} {value}: Input should be less than or equal to {bound}; give another --{option}")
    with pytest.raises(UserError, match="^--inference-steps 0: Input should be greater than or equal to 1"):
        with_overrides(EvalSettings(), {"inference_steps": 0})
    with pytest.raises(UserError, match="^--generations 5000: Input should be less than or equal to 1000; give another --generations"):
        with_overrides(EvalSettings(), {"generations_per_word": 5000}, {"generations_per_word": "--generations"})


def test_ls_refuses_an_absurd_task_file_with_one_line_and_exit_2(tasks_copy: Path) -> None:
    path = tasks_copy / "models" / "mini.yaml"
    edit(path, "    steps: 200\n", "    steps: 10000000000\n")
    proc = subprocess.run([sys.executable, "-m", "vwbench.cli", "ls", "--tasks-dir", str(tasks_copy)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    (line,) = proc.stderr.strip().splitlines()  # no traceback
    assert line.startswith("error: ") and f"models/mini.yaml:{line_of(path, '10000000000')}:" in line and "hyperparameters.steps: Input should be less than or equal to 100000" in line


@pytest.mark.parametrize(
    ("command", "override", "message"),
    [
        (["run", "--task", "clip->clip", "--dataset", "synth-voc"], ["--steps", "10000000000"], "--steps 10000000000: Input should be less than or equal to 100000"),
        (["sweep", "--suite", "mini", "--dataset", "synth-voc"], ["--trials", "5000"], "--trials 5000: Input should be less than or equal to 1000"),
        (["delta-sweep", "--task", "clip->clip", "--dataset", "synth-voc"], ["--seed", str(2**70)], f"--seed {2**70}: Input should be less than or equal to"),
        (["run", "--task", "clip->owlv2", "--dataset", "synth-voc"], ["--device", "gpu"], "unknown device 'gpu'; use auto, cpu or cuda"),
        (["run", "--task", "clip->owlv2", "--dataset", "synth-voc"], ["--transfer", "lstsqq"], "unknown transfer method 'lstsqq'"),
        (["sweep", "--suite", "mini", "--dataset", "synth-voc"], ["--device", "gpu"], "unknown device 'gpu'"),
        (["sweep", "--suite", "mini", "--dataset", "synth-voc"], ["--transfer", "ridge", "--transfer", "no/such"], "--transfer no/such: no such file or folder"),
    ],
)
def test_a_word_runs_absurd_override_is_one_line_exit_2_and_leaves_no_out_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], command: list[str], override: list[str], message: str
) -> None:
    import vwbench.results.atomic
    from vwbench.cli import main

    def reached(*args: object, **kwargs: object) -> None:  # without the check a run would start (10^10 steps)
        raise AssertionError("the --out folder was made before the override was checked")

    monkeypatch.setattr(vwbench.results.atomic, "ensure_output_dir", reached)
    out = tmp_path / "out"
    monkeypatch.setattr(sys, "argv", ["vwbench", *command, *override, "--out", str(out)])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2 and err.count("\n") == 1 and err.startswith(f"error: {message}"), err
    assert not out.exists()
