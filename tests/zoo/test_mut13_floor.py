"""Mutation-testing round 13 pins of the zoo card's floor columns: the floor is the random map's
mean over exactly the sources the lstsq mean is over, and a target whose in-domain value is the
floor has no share above it (no division by zero)."""

from __future__ import annotations

import json

from vwbench.zoo.report import write_zoo_report

from .test_report import _board, _one_checkpoint


def _card(tmp_path, board) -> str:
    _one_checkpoint(tmp_path / "zoo")
    (tmp_path / "board").mkdir()
    (tmp_path / "board" / "leaderboard.json").write_text(json.dumps(board))
    return write_zoo_report(tmp_path / "board", tmp_path / "zoo", names=[]).read_text()


def test_the_floor_is_over_the_sources_the_transferred_mean_is_over(tmp_path):
    """owlv2 has no lstsq words into clip, so its random map into clip (0.58) is not in the floor."""
    board = _board({"sd": 0.85, "owlv2": 0.305, "clip": 1.0}, {("sd", "clip"): 0.84})
    board["datasets"]["synth-coco"]["grids"].append({"method": "random", "cells": {"sd": {"clip": {"value": 0.62}}, "owlv2": {"clip": {"value": 0.58}}}})
    assert "| synth-coco | clip | 1.000 | 0.840 (1) | 84% | 0.620 | 58% |" in _card(tmp_path, board)


def test_an_in_domain_value_at_the_floor_has_no_share_above_it(tmp_path):
    board = _board({"sd": 0.85, "owlv2": 0.305, "clip": 0.6}, {("sd", "clip"): 0.5})
    board["datasets"]["synth-coco"]["grids"].append({"method": "random", "cells": {"sd": {"clip": {"value": 0.6}}}})
    assert "| synth-coco | clip | 0.600 | 0.500 (1) | 83% | 0.600 | - |" in _card(tmp_path, board)
