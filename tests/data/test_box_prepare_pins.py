"""Pins of `vwbench data box` and `vwbench data prepare` (mutation-round survivors).

`data box`: the detector checkpoint is found through --weights (before $VWBENCH_WEIGHTS), and a
dataset that is not DreamBooth-style is refused in one line (exit 2) before any detector is looked
for or any file written. `data prepare`: without --images-per-concept it uses the tasks' setting
of that dataset, and 8 for a dataset that no suite uses (not another dataset's setting)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from tests.data import fixtures_real as fx
from tests.data.test_data_commands import _booth_tasks
from tests.data.test_real_loaders import main_exit
from vwbench.cli import app
from vwbench.data.real import SPLIT_FILE

HUB_ID = "vwtest/owlv2-prior"  # the detector's pin in the hub-pinned tier: found only in a weights folder


# ---- vwbench data box --weights ------------------------------------------------------------------


@pytest.fixture
def hub_booth(tiny_tasks, tmp_path, monkeypatch) -> tuple[Path, Path, Path]:
    """(tasks, data root, weights folder): the tiny DreamBooth world of test_data_commands, with the
    tier's owlv2 pinned on the hub (``HUB_ID``) and its checkpoint only in ``weights/vwtest/owlv2-prior``.
    Neither $VWBENCH_WEIGHTS nor a Hugging Face cache can supply it."""
    tasks = _booth_tasks(tiny_tasks, tmp_path)
    tier_file = tasks / "models" / "tiny.yaml"
    tier = yaml.safe_load(tier_file.read_text())
    detector = Path(tier["models"]["owlv2"]["checkpoint"]["path"])
    weights = tmp_path / "weights"
    (weights / "vwtest").mkdir(parents=True)
    shutil.move(str(detector), weights / HUB_ID)
    tier["models"]["owlv2"]["checkpoint"] = {"hf_id": HUB_ID, "revision": "main"}
    tier_file.write_text(yaml.safe_dump(tier))
    fx.write_dreambooth_photos(tmp_path / "data" / "booth", ["cat2", "red_cup"], n=2, size=(64, 64))
    monkeypatch.delenv("VWBENCH_WEIGHTS", raising=False)
    (tmp_path / "empty-hf-cache").mkdir()
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf-cache"))
    return tasks, tmp_path / "data", weights


def _box_args(tasks: Path, data: Path, *extra) -> list[str]:
    return ["data", "box", "--dataset", "tinybooth", "--root", str(data), "--tasks-dir", str(tasks), "--device", "cpu", *map(str, extra)]


def test_box_finds_the_detector_in_the_weights_folder(hub_booth) -> None:
    tasks, data, weights = hub_booth
    result = CliRunner().invoke(app, _box_args(tasks, data, "--weights", weights))
    assert result.exit_code == 0, result.output
    coco = json.loads((data / "booth" / "boxes.json").read_text())
    assert len(coco["images"]) == 4 and len(coco["annotations"]) == 4
    assert result.output.splitlines()[0] == f"4 boxes for 4 photos of 2 subjects by {HUB_ID}: {data / 'booth' / 'boxes.json'}"


def test_box_without_weights_says_where_the_detector_was_looked_for(hub_booth, monkeypatch, capsys) -> None:
    """The same command without --weights: the hub-pinned detector is nowhere (one line, exit 2,
    nothing written): so the success above came from --weights."""
    tasks, data, _ = hub_booth
    code, err = main_exit(monkeypatch, capsys, *_box_args(tasks, data))
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: checkpoint {HUB_ID}@main not found in --weights/VWBENCH_WEIGHTS"), err
    assert not (data / "booth" / "boxes.json").exists()


def test_box_weights_option_wins_over_the_environment(hub_booth, tmp_path, monkeypatch) -> None:
    tasks, data, weights = hub_booth
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("VWBENCH_WEIGHTS", str(tmp_path / "elsewhere"))
    result = CliRunner().invoke(app, _box_args(tasks, data, "--weights", weights))
    assert result.exit_code == 0, result.output
    assert f"by {HUB_ID}:" in result.output
    # and $VWBENCH_WEIGHTS alone is used when --weights is not given
    monkeypatch.setenv("VWBENCH_WEIGHTS", str(weights))
    result = CliRunner().invoke(app, _box_args(tasks, data, "--force"))
    assert result.exit_code == 0, result.output


# ---- vwbench data box: DreamBooth only -------------------------------------------------------------


@pytest.mark.parametrize("dataset, tasks_dir", [("coco", None), ("synth-tiny", "tiny")])
def test_box_refuses_a_dataset_that_is_not_dreambooth_before_anything_else(tiny_tasks, tmp_path, monkeypatch, capsys, dataset, tasks_dir) -> None:
    """COCO has its own boxes and a synthetic dataset is generated: `data box` says so in one line
    (exit 2) without looking for a detector or writing a boxes file, even where the dataset's
    folder exists."""
    import vwbench.registry as registry

    def no_detector(*args, **kwargs):
        raise AssertionError("the detector was looked for")

    monkeypatch.setattr(registry, "resolve_checkpoint", no_detector)
    for sub in ("coco", "synth-tiny"):
        (tmp_path / "data" / sub).mkdir(parents=True)
    extra = ["--tasks-dir", str(tiny_tasks)] if tasks_dir else []
    code, err = main_exit(monkeypatch, capsys, "data", "box", "--dataset", dataset, "--root", str(tmp_path / "data"), "--device", "cpu", *extra)
    assert code == 2
    assert err == f"error: dataset {dataset} has its own boxes; `vwbench data box` is for DreamBooth-style subject folders\n"
    assert not list((tmp_path / "data").rglob("*.json"))


# ---- vwbench data prepare: images per concept when not given -------------------------------------


@pytest.fixture
def coco_tasks(tiny_tasks, tmp_path) -> tuple[Path, Path]:
    """(tasks, data root): the tiny tasks plus two COCO-format datasets of two concepts, 9 training
    and 2 held-out images each: ``tinycoco`` used by a suite whose tasks train on 3 images per
    concept, ``lonecoco`` used by none. The tiny suite's tasks (of synth-tiny) use 2."""
    tasks = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    for name in ("tinycoco", "lonecoco"):
        spec = {"name": name, "tier": "tiny", "loader": "coco", "heldout_per_concept": 2, "options": {"subdir": name}, "concepts": ["dog", "cat"]}
        (tasks / "datasets" / f"{name}.yaml").write_text(yaml.safe_dump(spec))
        fx.write_coco(tmp_path / "data" / name, ["dog", "cat"], train_n=9, val_n=2)
    suite = {"name": "cocos", "datasets": ["tinycoco"], "pairs": ["clip->clip"], "settings": {"hyperparameters": {"images_per_concept": 3}}}
    (tasks / "suites" / "cocos.yaml").write_text(yaml.safe_dump(suite))
    return tasks, tmp_path / "data"


def _prepare(tasks: Path, data: Path, dataset: str, *extra: str):
    result = CliRunner().invoke(app, ["data", "prepare", "--dataset", dataset, "--root", str(data), "--tasks-dir", str(tasks), *extra])
    assert result.exit_code == 0, result.output
    split = json.loads((data / dataset / SPLIT_FILE).read_text())
    return result.output, split


def test_prepare_of_a_dataset_no_suite_uses_selects_8_images_per_concept(coco_tasks) -> None:
    from vwbench.registry import TaskRegistry

    tasks, data = coco_tasks
    registry = TaskRegistry.from_dir(tasks)
    assert not [t for t in registry.tasks() if t.dataset.name == "lonecoco"]  # the premise: no task of it
    assert {t.hyperparameters.images_per_concept for t in registry.tasks()} == {2, 3}  # and no task's setting is 8
    output, split = _prepare(tasks, data, "lonecoco")
    assert "dog: 8 train, 2 held out" in output and "cat: 8 train, 2 held out" in output
    assert split["settings"]["images_per_concept"] == 8 and len(split["train"]) == 16


def test_prepare_uses_the_datasets_own_tasks_setting_and_the_option_over_both(coco_tasks) -> None:
    tasks, data = coco_tasks
    output, split = _prepare(tasks, data, "tinycoco")
    assert "dog: 3 train, 2 held out" in output and split["settings"]["images_per_concept"] == 3 and len(split["train"]) == 6
    output, split = _prepare(tasks, data, "lonecoco", "--images-per-concept", "5")
    assert "cat: 5 train, 2 held out" in output and split["settings"]["images_per_concept"] == 5
