"""The recipes' floating-point settings."""

from __future__ import annotations

import pytest
import torch

from vwbench.zoo.recipes.numerics import flush_denormals

DENORMAL = 1e-40  # below float32's smallest normal number, 1.18e-38

if not torch.set_flush_denormal(False):  # reports whether this CPU can flush at all
    pytest.skip("this CPU cannot flush denormals (torch.set_flush_denormal)", allow_module_level=True)


def _halved() -> float:
    return float(torch.tensor([DENORMAL * 4], dtype=torch.float32) / 2)


def test_denormals_flush_inside_and_come_back_after():
    assert _halved() > 0  # torch's default keeps denormals
    with flush_denormals():
        assert _halved() == 0.0
    assert _halved() > 0


def test_the_default_comes_back_after_an_error():
    try:
        with flush_denormals():
            raise RuntimeError("a step failed")
    except RuntimeError:
        pass
    assert _halved() > 0


def test_disabled_changes_nothing():
    with flush_denormals(enabled=False):
        assert _halved() > 0
    assert _halved() > 0
