"""Fixes from a user walkthrough of the submission path: what `vwbench validate` called valid and
`vwbench run` then stored (non-float map() output, a describe() that is not JSON, embeddings of an
unknown dataset or concept without --tier), a transposed map explained twice, and a word set
vwbench trained itself given as a submission."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from tests.test_cli_pins import _main
from vwbench.cli import app
from vwbench.submissions.sandbox import Limits, SubmissionFailure, run_transfer_submission
from vwbench.submissions.validate import validate

from .helpers import embeddings, linear_map, planted, transfer_folder
from .test_run_submissions import run_args

MAPPING = """
import numpy as np

class Transfer:
    def fit(self, source, target, tokens):
        self.W = np.linalg.lstsq(source, target, rcond=None)[0]

    def map(self, vectors):
        return {returns}

    def describe(self):
        return {describes}
"""


def _method(root: Path, returns: str = "vectors @ self.W", describes: str = "{}", name: str = "my-method") -> Path:
    return transfer_folder(root, MAPPING.format(returns=returns, describes=describes), name=name)


def _sandboxed(folder: Path):
    source, target, tokens = planted()
    return run_transfer_submission(folder, "transfer.py", "Transfer", source, target, tokens, source[:4], [""] * 4, Limits(time_limit_s=120))


# --- 1. map() must return floating-point values --------------------------------------------------------


@pytest.mark.parametrize("returns, dtype", [("(vectors @ self.W) > 0", "bool"), ("(vectors @ self.W * 100).astype(np.int64)", "int64"),
                                            ("(vectors @ self.W).astype(np.complex64)", "complex64")])
def test_a_map_that_returns_no_floats_is_refused_naming_its_dtype(tmp_path: Path, returns: str, dtype: str) -> None:
    folder = _method(tmp_path, returns=returns)
    report = validate(folder)
    assert report.problems == [f"dry run of my-method: raised in map(): TypeError: map() returned values of dtype {dtype}; "
                               "return floating-point vectors (float32: .astype(np.float32))"]
    with pytest.raises(SubmissionFailure, match=rf"raised in map\(\): TypeError: map\(\) returned values of dtype {dtype}; "):
        _sandboxed(folder)


@pytest.mark.parametrize("returns", ["(vectors @ self.W).astype(np.float64)", "(vectors @ self.W).astype(np.float16)", "(vectors @ self.W).tolist()"])
def test_other_floats_are_still_taken_as_float32(tmp_path: Path, returns: str) -> None:
    mapped, _, _ = _sandboxed(_method(tmp_path, returns=returns))
    assert mapped.dtype == np.float32 and mapped.shape == (4, 6)


def _run(monkeypatch, capsys, tasks: Path, out: Path, *extra: str) -> tuple[int, str]:
    """`vwbench run` on the tiny tasks through the real entry point: (exit code, last stderr line)."""
    code, _, err = _main(monkeypatch, capsys, *run_args(tasks, out, "clip->owlv2", *extra))
    return code, err.strip().splitlines()[-1]


def test_run_refuses_a_bool_map_before_training_and_writes_nothing(tiny_tasks: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    folder = _method(tmp_path / "subs", returns="(vectors @ self.W) > 0")
    out = tmp_path / "out"
    code, last = _run(monkeypatch, capsys, tiny_tasks, out, "--transfer", str(folder), "--steps", "2", "--trials", "1")
    assert code == 2 and last == ("error: submission my-method: raised in map(): TypeError: map() returned values of dtype bool; "
                                  "return floating-point vectors (float32: .astype(np.float32))")
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.safetensors"))


# --- 2. describe() must return JSON ------------------------------------------------------------------


def test_a_describe_holding_an_array_is_refused_naming_the_key(tmp_path: Path) -> None:
    folder = _method(tmp_path, describes="{'rank': 3, 'W': self.W}")
    expected = ("raised in describe(): TypeError: describe()['W'] is not JSON (Object of type ndarray is not JSON serializable); "
                "return a dict of JSON values: str, numbers, bools, None, lists and dicts (an array: .tolist())")
    assert validate(folder).problems == [f"dry run of my-method: {expected}"]
    with pytest.raises(SubmissionFailure) as caught:
        _sandboxed(folder)
    assert str(caught.value) == f"submission: {expected}"


def test_a_describe_of_json_values_and_numpy_scalars_is_kept_as_numbers(tmp_path: Path) -> None:
    folder = _method(tmp_path, describes="{'rank': np.int64(3), 'loss': np.float32(0.5), 'ok': np.bool_(True), 'lambdas': [0.1, None, 'x'], 'W': self.W.tolist()}")
    _, describe, _ = _sandboxed(folder)
    assert {k: describe[k] for k in ("rank", "loss", "ok", "lambdas")} == {"rank": 3, "loss": 0.5, "ok": True, "lambdas": [0.1, None, "x"]}
    assert np.array(describe["W"]).shape == (8, 6)


def test_run_refuses_a_describe_that_is_not_json(tiny_tasks: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    folder = _method(tmp_path / "subs", describes="{'W': self.W}")
    out = tmp_path / "out"
    code, last = _run(monkeypatch, capsys, tiny_tasks, out, "--transfer", str(folder), "--steps", "2", "--trials", "1")
    assert code == 2 and last.startswith("error: submission my-method: raised in describe(): TypeError: describe()['W'] is not JSON (")
    assert not list(out.rglob("*.json")) and not list(out.rglob("*.safetensors"))


# --- 3. without --tier, an embeddings file's dataset and concept names are still checked ------------------


def _validate(path: Path, *extra: str) -> tuple[int, list[str]]:
    res = CliRunner().invoke(app, ["validate", str(path), "--json", *extra])
    assert res.exception is None or isinstance(res.exception, SystemExit), res.output
    return res.exit_code, json.loads(res.output)["problems"]


def _words(*concepts: str) -> dict[str, torch.Tensor]:
    return {c: torch.zeros(4, 8) for c in concepts}


def test_without_tier_an_unknown_dataset_is_named_as_with_it(tmp_path: Path) -> None:
    """The built-in tasks: the same message, "did you mean" included, with and without --tier."""
    path = embeddings(tmp_path / "w.safetensors", {"circle": torch.zeros(4, 8)}, dataset="synth-cocoo")
    code, problems = _validate(path)
    assert code == 1 and problems == [
        "metadata dataset: unknown dataset 'synth-cocoo'; did you mean 'synth-coco' or 'synth-voc' or 'synth-dreambooth'? "
        "(known: coco, dreambooth, imagenet, synth-coco, synth-dreambooth, synth-imagenet, synth-voc, voc)"
    ]
    assert _validate(path, "--tier", "mini") == (1, problems)


def test_without_tier_missing_renamed_and_extra_concepts_are_problems(tiny_tasks: Path, tmp_path: Path) -> None:
    tasks = ("--tasks-dir", str(tiny_tasks))
    assert _validate(embeddings(tmp_path / "ok.safetensors", _words("circle", "square", "triangle")), *tasks) == (0, [])
    renamed = embeddings(tmp_path / "renamed.safetensors", _words("circle", "square", "trianglee"))
    assert _validate(renamed, *tasks) == (1, ["no words for concepts ['triangle']", "words for concepts the dataset does not have: ['trianglee']"])
    missing = embeddings(tmp_path / "missing.safetensors", _words("circle", "square"))
    assert _validate(missing, *tasks) == (1, ["no words for concepts ['triangle']"])
    alias = embeddings(tmp_path / "alias.safetensors", _words("circle", "square", "triangle"), dataset="Synth_Tiny")
    assert _validate(alias, *tasks) == (1, ["metadata dataset: 'Synth_Tiny' is not the dataset's name: write 'synth-tiny' (a run compares the name as written)"])


def test_without_tier_a_paper_dataset_is_any_tiers_dataset(tmp_path: Path) -> None:
    from vwbench.registry import TaskRegistry

    coco = TaskRegistry.from_dir().dataset("coco")
    assert coco.tier == "paper"
    path = embeddings(tmp_path / "coco.safetensors", _words(*coco.concept_names), dataset="coco")
    assert _validate(path) == (0, [])


# --- 5. validate --tier says of a wrongly shaped weight what run says -------------------------------------


def test_validate_tier_names_the_needed_shape_of_a_transposed_map_as_run_does(tmp_path: Path) -> None:
    """The mini tier's clip and owlv2 differ in width (the tiny ones do not): a bias-free map saved
    as [d_source, d_target] is one problem, the shape the models need, in run's words."""
    from vwbench.submissions import load_model
    from vwbench.submissions.transfers import LinearMapTransfer
    from vwbench.transfer.base import IncompatibleSpaces

    clip, owl = load_model("clip", tier="mini").vocabulary(), load_model("owlv2", tier="mini").vocabulary()
    assert clip.dim != owl.dim
    path = linear_map(tmp_path / "transposed.safetensors", torch.zeros(clip.dim, owl.dim), source_vocab_hash=clip.hash(), target_vocab_hash=owl.hash())
    expected = f"weight is [{clip.dim}, {owl.dim}], the models need [{owl.dim}, {clip.dim}] (d_target, d_source)"
    assert _validate(path, "--tier", "mini") == (1, [expected])
    with pytest.raises(IncompatibleSpaces) as caught:
        LinearMapTransfer(path).check_spaces(clip.dim, owl.dim)
    assert str(caught.value) == f"{path}: {expected}"


# --- 6. a word set vwbench trained is explained, and the documented conversion makes a submission ---------

WORDS_PROBLEM = ("this is a word set vwbench trained (format 'vwbench.words/1'); an embeddings submission also needs a name and its dataset's "
                 "name: convert it into one (for --embeddings) with the snippet under \"Words vwbench trained\" in submissions/README.md")
README = Path(__file__).resolve().parents[2] / "submissions" / "README.md"
SNIPPET_PATH_LINE = 'path, dataset = "runs/words/synth-coco/clip/0123456789abcdef.safetensors", "synth-coco"'


def test_a_trained_word_set_is_named_as_such_and_the_readme_converts_it(tiny_tasks: Path, tmp_path: Path, monkeypatch, capsys) -> None:
    import os
    import subprocess
    import sys

    from vwbench.results import read_result
    from vwbench.results.words_store import load_wordset

    from .test_readme_snippets import python_blocks

    trained = tmp_path / "trained"
    code, _, err = _main(monkeypatch, capsys, *run_args(tiny_tasks, trained, "clip->owlv2", "--steps", "1", "--trials", "2"))
    assert code == 0, err
    (words_file,) = (trained / "words" / "synth-tiny" / "clip").glob("*.safetensors")

    out = tmp_path / "out"
    code, last = _run(monkeypatch, capsys, tiny_tasks, out, "--embeddings", str(words_file))
    assert code == 2 and last == f"error: {words_file}: invalid embeddings submission: {WORDS_PROBLEM}"
    assert not out.exists() or not list(out.rglob("*.json"))
    assert validate(words_file).problems == [WORDS_PROBLEM]

    (snippet,) = python_blocks(README.read_text(encoding="utf-8"), "### Words vwbench trained")
    assert SNIPPET_PATH_LINE in snippet
    (tmp_path / "convert.py").write_text(snippet.replace(SNIPPET_PATH_LINE, f'path, dataset = {str(words_file)!r}, "synth-tiny"'))
    proc = subprocess.run([sys.executable, "convert.py"], cwd=tmp_path, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr
    converted = tmp_path / "my-words.safetensors"
    assert _validate(converted, "--tier", "tiny", "--tasks-dir", str(tiny_tasks)) == (0, [])

    report, stored = validate(converted), load_wordset(words_file)
    for concept, words in report.info["words"].items():  # each concept's trials, in trial order
        rows = [i for i, c in enumerate(stored.concepts) if c == concept]
        assert [stored.trials[i] for i in rows] == [0, 1] and torch.equal(words, stored.vectors[rows])
    code, _, err = _main(monkeypatch, capsys, *run_args(tiny_tasks, out, "clip->owlv2", "--embeddings", str(converted)))
    assert code == 0, err
    (result,) = [read_result(p) for p in (out / "results").rglob("*.json")]
    assert (result.transfer, result.n_trials, result.steps) == ("my-words+lstsq", 2, 0)
