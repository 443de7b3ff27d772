"""The run's target stage names what it loads: an x->x run does not print ``load owlv2`` twice."""

from __future__ import annotations

import pytest

from vwbench.registry import TaskRegistry
from vwbench.runner import _target_stage_name


@pytest.mark.parametrize(
    ("pair", "name"),
    [
        ("sd->owlv2", "load owlv2"),
        ("owlv2->owlv2", "check owlv2 as the target"),
        ("clip->sd", "load sd and judge"),
        ("sd->sd", "load judge"),
    ],
)
def test_the_target_stage_names_only_what_is_not_loaded_yet(pair: str, name: str) -> None:
    task = TaskRegistry.from_dir().get(pair, "synth-coco")
    assert _target_stage_name(task) == name
