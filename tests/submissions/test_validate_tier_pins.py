"""Pins of `vwbench validate --tier` (mutation-round survivors): the file is compared with the
models of the tier *named*, datasets of another tier are refused, a transfer method says there is
nothing to compare, the comparison is reported (JSON and text), and an unknown tier is one line on
stderr with exit code 2 before anything is checked.

The world is the session's tiny tasks plus a second tier, ``tiny2``, whose ``clip`` is another
tiny CLIP (the judge checkpoint: same words, other vectors, so another vocabulary hash)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from typer.testing import CliRunner

from tests.test_cli_pins import _main
from vwbench.cli import app

from .helpers import embeddings, linear_map
from .test_run_submissions import REPO, load_model


@pytest.fixture(scope="module")
def two_tiers(tiny_tasks, tmp_path_factory) -> Path:
    """A copy of the tiny tasks with a second tier ``tiny2`` (no datasets of its own) whose clip is
    the tiny judge checkpoint."""
    tasks = tmp_path_factory.mktemp("two-tiers") / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    tier = yaml.safe_load((tasks / "models" / "tiny.yaml").read_text())
    tier["tier"] = "tiny2"
    tier["models"]["clip"] = dict(tier["judge"])
    (tasks / "models" / "tiny2.yaml").write_text(yaml.safe_dump(tier))
    return tasks


@pytest.fixture(scope="module")
def tiny_map(tiny_tasks, tmp_path_factory) -> Path:
    """A clip->owlv2 linear map made for the `tiny` tier's checkpoints (right widths and hashes)."""
    clip, owl = load_model(tiny_tasks, "clip"), load_model(tiny_tasks, "owlv2")
    path = tmp_path_factory.mktemp("map") / "map.safetensors"
    return linear_map(path, torch.zeros(owl.vocabulary().dim, clip.vocabulary().dim),
                      source_vocab_hash=clip.vocabulary().hash(), target_vocab_hash=owl.vocabulary().hash())


def _model(tasks: Path, tier: str, family: str):
    """The adapter of ``family`` in ``tasks/models/<tier>.yaml`` (load_model reads tiny.yaml only)."""
    from vwbench.registry import adapter_class

    path = yaml.safe_load((tasks / "models" / f"{tier}.yaml").read_text())["models"][family]["checkpoint"]["path"]
    return adapter_class(family).from_pretrained(Path(path))


def _validate(path: Path, tasks: Path, *extra: str):
    return CliRunner().invoke(app, ["validate", str(path), "--tasks-dir", str(tasks), *extra])


def test_validate_tier_compares_with_the_named_tiers_checkpoints(two_tiers, tiny_map) -> None:
    """The same map fits `tiny` and not `tiny2`, whose clip has other vectors: the comparison is with
    the tier given, not with some other tier of the tasks folder."""
    fits = _validate(tiny_map, two_tiers, "--tier", "tiny", "--json")
    assert fits.exit_code == 0, fits.output
    assert json.loads(fits.output)["tier"] == "tiny: fits its checkpoints"

    clip, judge = _model(two_tiers, "tiny", "clip"), _model(two_tiers, "tiny2", "clip")
    assert judge.vocabulary().hash() != clip.vocabulary().hash()  # the premise: tiny2's clip is another checkpoint
    other = _validate(tiny_map, two_tiers, "--tier", "tiny2", "--json")
    assert other.exit_code == 1, other.output
    report = json.loads(other.output)
    assert report["ok"] is False and "tier" not in report  # "fits its checkpoints" only when it does
    assert report["problems"] == [
        f"source_vocab_hash {clip.vocabulary().hash()[:12]}… is not the source model's (clip: {judge.vocabulary().hash()[:12]}…); "
        "the map was made for other checkpoints"
    ]


def test_validate_tier_refuses_embeddings_of_another_tiers_dataset(two_tiers, tmp_path) -> None:
    """Embeddings name their dataset; --tier tiny2 refuses synth-tiny (a dataset of tier tiny) in
    one problem, while --tier tiny accepts the same file."""
    vocab = _model(two_tiers, "tiny", "clip").vocabulary()
    words = embeddings(tmp_path / "w.safetensors", {c: torch.zeros(4, vocab.dim) for c in ("circle", "square", "triangle")},
                       vocab_hash=vocab.hash())
    assert _validate(words, two_tiers, "--tier", "tiny", "--json").exit_code == 0
    res = _validate(words, two_tiers, "--tier", "tiny2", "--json")
    assert res.exit_code == 1, res.output
    assert json.loads(res.output)["problems"] == ["metadata dataset: synth-tiny belongs to tier tiny, not tiny2"]


def test_validate_tier_of_a_transfer_method_says_there_is_nothing_to_compare(two_tiers) -> None:
    res = _validate(REPO / "submissions" / "ref-lstsq", two_tiers, "--tier", "tiny2", "--no-run", "--json")
    assert res.exit_code == 0, res.output
    report = json.loads(res.output)
    assert report["kind"] == "transfer-method" and report["ok"] is True
    assert report["tier"] == "tiny2: a transfer method is fitted on whichever models a run pairs, so there is nothing to compare"


def test_validate_tier_result_is_printed_in_the_text_report(two_tiers, tiny_map, monkeypatch, capsys) -> None:
    code, out, err = _main(monkeypatch, capsys, "validate", tiny_map, "--tier", "tiny", "--tasks-dir", two_tiers)
    assert code == 0 and err == "", err
    assert out.splitlines()[0] == f"{tiny_map}: valid linear-map submission"
    assert '  tier: "tiny: fits its checkpoints"' in out.splitlines()
    # without --tier there is no comparison, so no tier line
    code, out, _ = _main(monkeypatch, capsys, "validate", tiny_map, "--tasks-dir", two_tiers)
    assert code == 0 and "tier" not in out


def test_validate_unknown_tier_is_one_line_exit_2_before_any_check(two_tiers, tmp_path, monkeypatch, capsys) -> None:
    """An unknown --tier is a bad invocation (exit 2, `error: ...` naming the known tiers), not a
    report about the file: even a file that is no submission at all is not looked at."""
    import vwbench.submissions as submissions

    def no_validation(*args, **kwargs):
        raise AssertionError("the submission was checked before --tier was")

    monkeypatch.setattr(submissions, "validate", no_validation)
    junk = tmp_path / "notes.txt"
    junk.write_text("not a submission")
    code, out, err = _main(monkeypatch, capsys, "validate", junk, "--tier", "tiny3", "--tasks-dir", two_tiers)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: unknown tier 'tiny3'"), err
    assert "(known: tiny, tiny2)" in err
