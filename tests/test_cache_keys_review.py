"""A review of what each stored thing's key holds found changed inputs that reused old outputs:
results, words, features and studies made by another vwbench release; a checkpoint folder whose
manifest left out a config the loader reads; `--embeddings` runs whose concepts' init words (read
by the `anchor` transfer) changed. Each test fails without its fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

import vwbench
from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.results import provenance
from vwbench.results.provenance import made_elsewhere
from vwbench.results.words_store import release_key_part
from vwbench.registry.checkpoints import verify_manifest

from tests.submissions.test_run_submissions import results_of, run_args, tiny_clip_words

ZOO = Path(vwbench.__file__).resolve().parent / "zoo"


# ---- vwbench's release is in every key ------------------------------------------------------------


def test_every_key_holds_the_release(monkeypatch) -> None:
    from types import SimpleNamespace as NS

    from vwbench.pipeline_steps import result_key

    task = NS(target=NS(model_dump=lambda mode: {"family": "clip"}), eval=NS(model_dump=lambda mode: {"batch_size": 8}), version=1)

    before = result_key("w", "lstsq", task, {}, "d", torch.float32)
    monkeypatch.setattr(vwbench, "__version__", "9.9.9")
    assert release_key_part() == {"vwbench": "9.9.9"}
    assert result_key("w", "lstsq", task, {}, "d", torch.float32) != before  # features: the end-to-end test below


def test_words_and_features_keys_change_with_the_release(tiny_tasks, tmp_path, monkeypatch) -> None:
    out = tmp_path / "runs"
    first = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->clip"))
    assert first.exit_code == 0, first.output
    monkeypatch.setattr(vwbench, "__version__", "9.9.9")
    again = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->clip"))
    assert again.exit_code == 0, again.output
    assert "reusing" not in again.output  # neither the result nor the words of the other release
    assert len(list((out / "results").rglob("*.json"))) == 2
    assert len(list((out / "words").rglob("*.safetensors"))) == 2
    features = [p for p in (out / "features").iterdir() if p.is_dir()]
    assert len(features) == 2  # each release has its own feature namespace


def test_a_reused_result_from_another_commit_says_so(monkeypatch) -> None:
    monkeypatch.setattr(provenance, "git_commit", lambda: "b" * 40)
    note = made_elsewhere("a" * 40 + "-dirty")
    assert note == " (made at commit aaaaaaaaaaaa-dirty, this checkout is bbbbbbbbbbbb: give another --out to compute it, and the words it reads, with this code)"
    assert made_elsewhere("b" * 40) == ""  # the same clean commit
    assert made_elsewhere(None) == ""  # nothing known: nothing claimed
    assert "made at commit bbbbbbbbbbbb-unchecked, this checkout is bbbbbbbbbbbb:" in made_elsewhere("b" * 40 + "-unchecked")
    monkeypatch.setattr(provenance, "git_commit", lambda: "b" * 40 + "-dirty")
    assert made_elsewhere("b" * 40 + "-dirty").startswith(" (made from a modified tree of commit bbbbbbbbbbbb-dirty, as this checkout is:")
    monkeypatch.setattr(provenance, "git_commit", lambda: None)
    assert made_elsewhere("a" * 40) == ""
    monkeypatch.setattr(provenance, "git_commit", lambda: "b" * 64)  # a repository with SHA-256 commit ids
    assert made_elsewhere("b" * 64) == ""
    assert "made at commit aaaaaaaaaaaa-dirty, this checkout is bbbbbbbbbbbb:" in made_elsewhere("a" * 64 + "-dirty")


def test_reused_results_and_words_of_another_commit_say_so(tiny_tasks, tmp_path, monkeypatch) -> None:
    """The reuse lines name the commit that made a stored result or word set when it is not this
    checkout's; removing a result does not retrain its words, so their line says it too."""
    import vwbench.pipeline_steps as steps

    def lines(start: str) -> list[str]:
        res = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->clip", "--seed", "5"))  # words no other test made
        assert res.exit_code == 0, res.output
        return [line for line in res.output.splitlines() if line.startswith(start)]

    out = tmp_path / "runs"
    monkeypatch.setattr(steps, "git_commit", lambda: "a" * 40)  # what the words and the result record
    monkeypatch.setattr(provenance, "git_commit", lambda: "a" * 40)
    assert lines("reusing") == []
    (same,) = lines("reusing the stored result")
    assert same.endswith(".json"), same  # the same clean commit: nothing added
    monkeypatch.setattr(provenance, "git_commit", lambda: "b" * 40)
    (result,) = lines("reusing the stored result")
    assert "(made at commit aaaaaaaaaaaa, this checkout is bbbbbbbbbbbb:" in result, result
    for path in (out / "results").rglob("*.json"):
        path.unlink()
    (words,) = lines("reusing trained words")
    assert "(made at commit aaaaaaaaaaaa, this checkout is bbbbbbbbbbbb:" in words, words


# ---- a manifest must list what the loader reads ---------------------------------------------------


def test_a_config_the_manifest_does_not_list_is_refused(tmp_path) -> None:
    folder = tmp_path / "mini-clip"
    shutil.copytree(ZOO / "mini-clip", folder)
    manifest = folder / "manifest.json"
    verify_manifest(folder, manifest)  # as shipped: every file listed
    (folder / "README.md").write_text("notes")  # not read by any loader: fine
    (folder / ".cache" / "huggingface").mkdir(parents=True)
    (folder / ".cache" / "huggingface" / "x.json").write_text("{}")  # a hub download's bookkeeping: fine
    verify_manifest(folder, manifest)
    data = json.loads(manifest.read_text())
    del data["files"]["open_clip_config.json"]
    manifest.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"file open_clip_config\.json is not listed in manifest\.json, so it cannot be checked"):
        verify_manifest(folder, manifest)
    del data["files"]["bpe_simple_vocab.txt.gz"]
    manifest.write_text(json.dumps(data))
    with pytest.raises(UserError, match=r"file bpe_simple_vocab\.txt\.gz \(and 1 more\) is not listed"):
        verify_manifest(folder, manifest)


def test_a_file_in_a_symlinked_folder_the_manifest_does_not_list_is_refused(tmp_path) -> None:
    """The loaders read through a linked folder (a tokenizer shared between checkpoints), so the
    check must look there too (Path.rglob on Python 3.11 does not)."""
    folder, shared = tmp_path / "mini-clip", tmp_path / "shared" / "tokenizer"
    shutil.copytree(ZOO / "mini-clip", folder)
    shared.mkdir(parents=True)
    (shared / "vocab.json").write_text("{}")
    (folder / "tokenizer").symlink_to(shared, target_is_directory=True)
    with pytest.raises(UserError, match=r"file tokenizer/vocab\.json is not listed in manifest\.json"):
        verify_manifest(folder, folder / "manifest.json")


# ---- submitted embeddings: the init words are part of the result --------------------------------


@pytest.mark.parametrize("changed", [0, 2])  # the first concept's init word, and the last's
def test_embeddings_with_the_anchor_transfer_are_evaluated_again_when_an_init_word_changes(tiny_tasks, tmp_path, changed) -> None:
    path, _, _ = tiny_clip_words(tiny_tasks, tmp_path / "words.safetensors")
    out = tmp_path / "runs"
    first = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--embeddings", str(path), "--transfer", "anchor"))
    assert first.exit_code == 0, first.output
    edited = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, edited)
    dataset = edited / "datasets" / "synth-tiny.yaml"
    spec = yaml.safe_load(dataset.read_text())
    concepts = ["circle", "square", "triangle"]
    spec["concepts"] = [{"name": c, "init_word": "square" if c != "square" else "circle"} if i == changed else c for i, c in enumerate(concepts)]
    dataset.write_text(yaml.safe_dump(spec))
    again = CliRunner().invoke(app, run_args(edited, out, "clip->owlv2", "--embeddings", str(path), "--transfer", "anchor"))
    assert again.exit_code == 0, again.output
    assert "reusing the stored result" not in again.output
    assert len(results_of(out)) == 1 and len(list((out / "results").rglob("*.json"))) == 2


# ---- copies of one word are one measurement -------------------------------------------------------


def test_anchor_trials_are_copies_and_count_once_in_the_interval(tiny_tasks, tmp_path, monkeypatch) -> None:
    """`anchor` maps every trial of a concept to the concept's init word: its trials are one word
    evaluated again, so the interval is over concepts, not over their copies."""
    import vwbench.pipeline_steps as steps

    seen = {}
    real = steps.score_words

    def spy(predictions, words, task, kind, repeated=None):
        seen[task.name] = list(repeated)
        return real(predictions, words, task, kind, repeated)

    monkeypatch.setattr(steps, "score_words", spy)
    out = tmp_path / "runs"
    for transfer in ("anchor", "lstsq"):
        res = CliRunner().invoke(app, run_args(tiny_tasks, out / transfer, "owlv2->clip", "--transfer", transfer))
        assert res.exit_code == 0, res.output
        assert seen.pop("owlv2->clip") == ([False, True] * 3 if transfer == "anchor" else [False] * 6), transfer


def test_score_words_counts_a_repeated_word_once(monkeypatch) -> None:
    from types import SimpleNamespace as NS

    import vwbench.metrics as metrics
    from vwbench.metrics import summarize
    from vwbench.pipeline_steps import score_words
    from vwbench.results.words_store import WordSet

    monkeypatch.setattr(metrics, "score", lambda pred, kind: {"m": pred})
    values = [0.2, 0.2, 0.9, 0.9, 0.5, 0.5]
    words = WordSet(torch.zeros(6, 1, 2), ["a", "a", "b", "b", "c", "c"], [0, 1] * 3, ["x"] * 6, {})
    scored = score_words(values, words, NS(name="t", metric="m"), "k", [False, True] * 3)
    once = summarize({"a": [0.2], "b": [0.9], "c": [0.5]}, bounds=(0.0, 1.0))
    assert scored["summary"].ci95 == pytest.approx(once.ci95) and scored["summary"].n == 3
    assert len(scored["per_word"]) == 6  # every word is still listed
    assert score_words(values, words, NS(name="t", metric="m"), "k")["summary"].n == 6


def test_repeated_words_are_found_within_a_concept_only() -> None:
    from vwbench.pipeline_steps import repeated_words

    a, b = torch.zeros(2, 3), torch.ones(2, 3)
    assert repeated_words(torch.stack([a, a, b, a, a]), ["x", "x", "x", "y", "y"]) == [False, True, False, False, True]


def test_a_model_spec_takes_no_options_it_would_ignore() -> None:
    """`options` was accepted and documented as going to the adapter, which never read it (an
    `image_size: 32, options: {resize: 32}` run reused the old words and gave the same value)."""
    from pydantic import ValidationError

    from vwbench.registry.schema import ModelSpec

    spec = {"family": "clip", "checkpoint": {"path": "zoo/mini-clip", "manifest": "manifest.json"}}
    assert ModelSpec.model_validate(spec).family == "clip"
    with pytest.raises(ValidationError, match="options"):
        ModelSpec.model_validate({**spec, "options": {"resize": 32}})
