"""Mutation-testing round 13 pins: an `--embeddings` result's key holds every concept's init word
(not only the first's), and repeated words pair each word with its own concept."""

from __future__ import annotations

import shutil

import torch
import yaml
from typer.testing import CliRunner

from vwbench.cli import app

from tests.submissions.test_run_submissions import results_of, run_args, tiny_clip_words


def test_repeated_words_pair_each_word_with_its_own_concept() -> None:
    from vwbench.pipeline_steps import repeated_words

    x, y = torch.zeros(2, 3), torch.ones(2, 3)
    assert repeated_words(torch.stack([x, y, x]), ["b", "a", "b"]) == [False, False, True]


def test_the_last_concept_s_init_word_is_in_an_embeddings_result_s_key(tiny_tasks, tmp_path) -> None:
    path, _, _ = tiny_clip_words(tiny_tasks, tmp_path / "words.safetensors")
    out = tmp_path / "runs"
    first = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--embeddings", str(path), "--transfer", "anchor"))
    assert first.exit_code == 0, first.output
    edited = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, edited)
    dataset = edited / "datasets" / "synth-tiny.yaml"
    spec = yaml.safe_load(dataset.read_text())
    spec["concepts"] = ["circle", "square", {"name": "triangle", "init_word": "square"}]
    dataset.write_text(yaml.safe_dump(spec))
    again = CliRunner().invoke(app, run_args(edited, out, "clip->owlv2", "--embeddings", str(path), "--transfer", "anchor"))
    assert again.exit_code == 0, again.output
    assert "reusing the stored result" not in again.output
    assert len(results_of(out)) == 1 and len(list((out / "results").rglob("*.json"))) == 2
