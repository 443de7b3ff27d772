"""A sweep on a local Ray instance (2 CPU workers) stores what the local executor stores, and a
second sweep skips every unit. The one test here that starts Ray (tens of seconds)."""

from __future__ import annotations

import re

import pytest
import torch
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.results import read_result
from vwbench.results.words_store import load_wordset

pytest.importorskip("ray", reason="ray is not installed (pip install 'vwbench[scale]'); the Ray executor cannot run")

# two source groups (clip, owlv2) of 3 concepts x 2 trials; clip's words serve two targets
PAIRS = ["clip->clip", "clip->owlv2", "owlv2->clip"]


def _sweep(tiny_tasks, out, *extra):
    args = ["sweep", "--suite", "tiny", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu", "--threads", "1"]
    for p in PAIRS:
        args += ["--pair", p]
    res = CliRunner().invoke(app, args + list(extra))
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def _results(out):
    return {(r.task, r.transfer): r for r in map(read_result, (out / "results").rglob("*.json"))}


def _word_sets(out):
    """The assembled word set of each source (the unit files live in *.units/ folders)."""
    return {p.parent.name: load_wordset(p) for p in (out / "words").rglob("*.safetensors") if not p.parent.name.endswith(".units")}


def test_ray_sweep_equals_the_local_sweep_and_resumes(tiny_tasks, tmp_path):
    local, distributed = tmp_path / "local", tmp_path / "ray"
    _sweep(tiny_tasks, local)
    first = _sweep(tiny_tasks, distributed, "--executor", "ray", "--workers", "2", "--words-per-job", "4")
    assert "12 needed, 0 stored (skipped), 12 to train in 4 job(s)" in first
    assert "results: 3 computed, 0 reused" in first
    units = list((distributed / "words").rglob("*.units/*.safetensors"))
    assert len(units) == 12  # one file per word, written by the workers

    want, got = _results(local), _results(distributed)
    assert sorted(want) == sorted(got) and sorted(task for task, _ in got) == sorted(PAIRS)
    for key, result in want.items():
        other = got[key]
        assert other.value == pytest.approx(result.value, abs=1e-6), key
        assert other.per_concept == pytest.approx(result.per_concept, abs=1e-6), key
    words_local, words_ray = _word_sets(local), _word_sets(distributed)
    assert sorted(words_local) == sorted(words_ray) == ["clip", "owlv2"]
    for family, words in words_local.items():
        assert words.concepts == words_ray[family].concepts and words.trials == words_ray[family].trials
        assert torch.allclose(words.vectors, words_ray[family].vectors, atol=1e-5), family

    # with the same chunks the local executor stores bit-identical words and numbers (issue 7: the
    # same command gives the same bits whether its units ran here or on Ray)
    chunked = tmp_path / "local-chunked"
    _sweep(tiny_tasks, chunked, "--words-per-job", "4")
    same_chunks = _word_sets(chunked)
    for family, words in words_ray.items():
        assert torch.equal(words.vectors, same_chunks[family].vectors), family
    for key, result in _results(chunked).items():
        assert (result.value, result.per_concept, result.per_word) == (got[key].value, got[key].per_concept, got[key].per_word), key

    stamps = {p: p.stat().st_mtime_ns for p in [*units, *(distributed / "results").rglob("*.json")]}
    second = _sweep(tiny_tasks, distributed, "--executor", "ray", "--workers", "2")
    assert "12 needed, 12 stored (skipped), 0 to train" in second
    assert "results: 0 computed, 3 reused" in second
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    assert re.search(r"suite tiny: 3 runs", second)
