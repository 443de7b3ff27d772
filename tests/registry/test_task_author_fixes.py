"""What a task author's mistakes do (a walkthrough extending tasks/ without Python): two datasets
that answer to one name, NAME.yaml beside NAME.yml, a suite whose name is not its file's, an
empty pair list, a `PAIR@dataset` key for an underscored dataset, two keys for one task, a
replaced list blamed on the file it replaced, and a bumped task version reusing a result."""

from __future__ import annotations

from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.registry import TaskRegistry

from .conftest import line_of
from .test_loader import load_error


def _mine(tasks: Path, name: str = "synth-mine", extra: str = "") -> Path:
    path = tasks / "datasets" / f"{name}.yaml"
    path.write_text(f"include: _synth.yaml\nname: {name}\noptions: {{variant: voc}}\nconcepts: [circle, square, triangle]\n{extra}")
    return path


def _suite(tasks: Path, name: str, body: str) -> Path:
    path = tasks / "suites" / f"{name}.yaml"
    path.write_text(body)
    return path


def test_a_dataset_including_another_does_not_take_over_its_aliases(tasks_copy: Path) -> None:
    animals = tasks_copy / "datasets" / "animals.yaml"
    animals.write_text("include: coco.yaml\nname: animals\nconcepts: [bear, dog, cat]\n")
    message = load_error(tasks_copy)
    assert message == (f"{animals}: dataset animals inherits dataset coco's aliases through `include:` ({tasks_copy / 'datasets' / 'coco.yaml'}:7); "
                       "give it its own with `aliases: [...]`, or none with `aliases: []`")
    animals.write_text("include: coco.yaml\nname: animals\naliases: []\nconcepts: [bear, dog, cat]\n")
    registry = TaskRegistry.from_dir(tasks_copy)
    assert registry.dataset("mscoco").name == "coco"


def test_two_dataset_names_that_read_the_same_are_refused(tasks_copy: Path) -> None:
    _mine(tasks_copy, "synth-mine")
    twin = _mine(tasks_copy, "synth_mine")
    message = load_error(tasks_copy)
    mine = tasks_copy / "datasets" / "synth-mine.yaml"
    assert message == f"{twin}:2: dataset name 'synth_mine' is read as 'synth-mine', as dataset synth-mine's is (at {mine}:2); rename one of them"


def test_an_alias_that_is_another_datasets_name_is_refused(tasks_copy: Path) -> None:
    path = _mine(tasks_copy, extra="aliases: [synth-coco]\n")
    message = load_error(tasks_copy)
    assert message.startswith(f"{path}:{line_of(path, 'aliases')}: dataset synth-mine's alias 'synth-coco' is the name of dataset synth-coco (at ")


def test_name_yaml_beside_name_yml_is_refused(tasks_copy: Path) -> None:
    _mine(tasks_copy)
    (tasks_copy / "datasets" / "synth-mine.yml").write_text((tasks_copy / "datasets" / "synth-mine.yaml").read_text())
    assert "synth-mine.yaml and " in load_error(tasks_copy) and "synth-mine.yml both define datasets 'synth-mine'; keep one of them" in load_error(tasks_copy)
    (tasks_copy / "models" / "mini.yml").write_text((tasks_copy / "models" / "mini.yaml").read_text())
    (tasks_copy / "datasets" / "synth-mine.yml").unlink()
    assert "mini.yml both define models 'mini'" in load_error(tasks_copy)


def test_a_suite_is_named_as_its_file(tasks_copy: Path) -> None:
    _mine(tasks_copy)
    path = _suite(tasks_copy, "other", "name: mine\ndatasets: [synth-mine]\npairs: [owlv2->owlv2]\n")
    message = load_error(tasks_copy)
    assert message == f"{path}:1: suite name 'mine' must match its file name (other)"


def test_a_suite_with_no_pairs_is_refused(tasks_copy: Path) -> None:
    _mine(tasks_copy)
    path = _suite(tasks_copy, "mine", "name: mine\ndatasets: [synth-mine]\npairs: []\n")
    message = load_error(tasks_copy)
    assert message.startswith(f"{path}:{line_of(path, 'pairs')}:") and "at least 1 item" in message


def test_a_per_task_key_finds_an_underscored_dataset(tasks_copy: Path) -> None:
    _mine(tasks_copy, "my_shapes")
    _suite(tasks_copy, "mine", "name: mine\ndatasets: [my_shapes]\npairs: [clip->owlv2]\ntasks:\n  clip->owlv2@my_shapes: {hyperparameters: {steps: 3}}\n")
    assert TaskRegistry.from_dir(tasks_copy).get("clip->owlv2", "my_shapes").hyperparameters.steps == 3


def test_two_keys_for_one_task_are_refused(tasks_copy: Path) -> None:
    _mine(tasks_copy)
    path = _suite(tasks_copy, "mine", "name: mine\ndatasets: [synth-mine]\npairs: [clip->clip]\ntasks:\n  clip->clip: {hyperparameters: {lr: 0.001}}\n  cls->cls: {hyperparameters: {lr: 0.009}}\n")
    with pytest.raises(UserError) as info:  # `cls` is not a family: the second key is refused either way
        TaskRegistry.from_dir(tasks_copy)
    assert str(info.value).startswith(f"{path}:")
    path.write_text("name: mine\ndatasets: [synth-mine]\npairs: [clip->clip]\ntasks:\n  clip->clip: {hyperparameters: {lr: 0.001}}\n  'CLIP → clip': {hyperparameters: {lr: 0.009}}\n")
    message = load_error(tasks_copy)
    assert message.startswith(f"{path}:{line_of(path, 'CLIP')}: 'CLIP → clip' names the same task as 'clip->clip'")


def test_a_replaced_list_is_blamed_on_the_file_that_replaced_it(tasks_copy: Path) -> None:
    _mine(tasks_copy)
    path = _suite(tasks_copy, "mine", "name: mine\ndatasets: [synth-mine]\npairs: [clip->clip]\nsettings:\n  hyperparameters: {betas: [0.9]}\n")
    message = load_error(tasks_copy)
    assert message.startswith(f"{path}:{line_of(path, 'betas')}:"), message
    assert "defaults.yaml" not in message


def test_a_task_defined_twice_says_how_to_fix_it(tasks_copy: Path) -> None:
    _suite(tasks_copy, "quick", "name: quick\ndatasets: [synth-voc]\npairs: [clip->clip]\n")
    message = load_error(tasks_copy)
    assert "task clip->clip on synth-voc is also defined at" in message and "a task belongs to one suite" in message


def test_a_bumped_task_version_is_a_new_result_key() -> None:
    import torch

    from vwbench.pipeline_steps import result_key
    from vwbench.registry import TaskRegistry

    task = TaskRegistry.from_dir().get("clip->clip", "synth-voc")
    key = result_key("w", "identity", task, {}, "d", torch.float32)
    assert result_key("w", "identity", task.model_copy(update={"version": 1}), {}, "d", torch.float32) == key
    assert result_key("w", "identity", task.model_copy(update={"version": 2}), {}, "d", torch.float32) != key


def test_ls_prints_nothing_when_a_study_file_does_not_load(tasks_copy: Path, monkeypatch, capsys) -> None:
    """`vwbench ls` printed the task table and then failed on the study files: the study rows are
    read first now."""
    from tests.test_cli_pins import _main

    path = tasks_copy / "studies" / "align.yaml"
    path.write_text(path.read_text().replace("tiers:\n  paper:", "tiers:\n  papper:", 1))
    code, out, err = _main(monkeypatch, capsys, "ls", "--tasks-dir", tasks_copy)
    assert code == 2 and out == "" and "papper" in err, (out, err)


def test_a_tab_in_the_indentation_says_yaml_takes_spaces(tasks_copy: Path) -> None:
    path = _suite(tasks_copy, "mine", "name: mine\ndatasets: [synth-voc]\nsettings:\n\thyperparameters: {steps: 2}\n")
    message = load_error(tasks_copy)
    assert message.startswith(f"{path}:4: YAML syntax error: ") and message.endswith("; indent with spaces: YAML does not allow tabs")


def test_ls_of_a_dataset_no_suite_lists_says_why(tasks_copy: Path, monkeypatch, capsys) -> None:
    from tests.test_cli_pins import _main

    _mine(tasks_copy)
    code, out, err = _main(monkeypatch, capsys, "ls", "--tasks-dir", tasks_copy, "--dataset", "synth-mine")
    assert code == 2 and out == ""
    assert err.startswith("error: --dataset 'synth-mine': no task has it; a dataset has tasks once a suite file (suites/NAME.yaml in the tasks folder) lists it (datasets with tasks: ")


def test_a_misspelt_default_transfer_says_where_it_is_set(tasks_copy: Path, monkeypatch, capsys, tmp_path: Path) -> None:
    from tests.test_cli_pins import _main

    _mine(tasks_copy)
    _suite(tasks_copy, "mine", "name: mine\ndatasets: [synth-mine]\npairs: [clip->owlv2]\nsettings:\n  transfer: {cross_domain: lstqs}\n")
    code, _, err = _main(monkeypatch, capsys, "run", "--tasks-dir", tasks_copy, "--task", "clip->owlv2", "--dataset", "synth-mine", "--out", tmp_path / "o")
    assert code == 2 and err.count("\n") == 1
    assert "unknown transfer method 'lstqs'; did you mean 'lstsq'?" in err and "(the default of task clip->owlv2 on synth-mine: `transfer: cross_domain:`" in err
    assert not (tmp_path / "o").exists()
