"""Mutation-testing round 12: task files naming datasets. A `PAIR@dataset` key finds its dataset
however the name is spelt (as `--dataset` reads it), and a dataset may list another spelling of
its own name as an alias."""

from __future__ import annotations

from pathlib import Path

from vwbench.registry import TaskRegistry


def _mine(tasks: Path, name: str, extra: str = "") -> None:
    (tasks / "datasets" / f"{name}.yaml").write_text(f"include: _synth.yaml\nname: {name}\noptions: {{variant: voc}}\nconcepts: [circle, square, triangle]\n{extra}")


def test_a_per_task_key_spelt_otherwise_still_sets_its_task(tasks_copy: Path) -> None:
    _mine(tasks_copy, "my_shapes")
    (tasks_copy / "suites" / "mine.yaml").write_text(
        "name: mine\ndatasets: [my_shapes]\npairs: [clip->owlv2]\ntasks:\n  clip->owlv2@My-Shapes: {hyperparameters: {steps: 3}}\n"
    )
    registry = TaskRegistry.from_dir(tasks_copy)
    assert registry.get("clip->owlv2", "my_shapes").hyperparameters.steps == 3


def test_an_alias_that_respells_the_datasets_own_name_is_allowed(tasks_copy: Path) -> None:
    _mine(tasks_copy, "synth-mine", "aliases: [synth_mine, Synth Mine]\n")
    registry = TaskRegistry.from_dir(tasks_copy)
    assert registry.dataset("synth_mine").name == "synth-mine"
