"""Submissions evaluated by `vwbench run` on tiny real models, and the reference submissions
checked against the built-in methods they wrap."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.results import read_result
from vwbench.submissions.sandbox import Limits, run_transfer_submission
from vwbench.transfer import get_transfer

from .helpers import embeddings, hostile, linear_map, planted, transfer_folder

REPO = Path(__file__).resolve().parents[2]


def run_args(tasks: Path, out: Path, task: str, *extra: str) -> list[str]:
    return ["run", "--task", task, "--dataset", "synth-tiny", "--tasks-dir", str(tasks), "--out", str(out), "--device", "cpu", "--threads", "1", *extra]


def load_model(tasks: Path, family: str):
    from vwbench.registry import adapter_class

    path = yaml.safe_load((tasks / "models" / "tiny.yaml").read_text())["models"][family]["checkpoint"]["path"]
    return adapter_class(family).from_pretrained(Path(path))


def tiny_clip_words(tiny_tasks: Path, path: Path, seed: int = 0, shape: tuple[int, ...] = (4,)) -> tuple[Path, dict[str, torch.Tensor], object]:
    """An embeddings file of random words (``[*shape, d]`` per concept) in the tiny CLIP's space,
    its words and that model's vocabulary."""
    vocab = load_model(tiny_tasks, "clip").vocabulary()
    g = torch.Generator().manual_seed(seed)
    words = {c: torch.randn(*shape, vocab.dim, generator=g) for c in ("circle", "square", "triangle")}
    return embeddings(path, words, vocab_hash=vocab.hash()), words, vocab


def results_of(out: Path) -> dict[str, Path]:
    return {read_result(p).transfer: p for p in (out / "results").rglob("*.json")}


def test_reference_submissions_equal_the_builtins() -> None:
    source, target, tokens = planted(n=150, ds=8, dt=6, seed=4)
    vectors = np.random.default_rng(1).standard_normal((6, 8)).astype(np.float32)
    init = [t[:-4] for t in tokens[:6]]
    for name in ("lstsq", "ridge", "procrustes", "knn", "anchor", "random"):
        folder = REPO / "submissions" / f"ref-{name}"
        mapped, describe, _ = run_transfer_submission(folder, "transfer.py", "Transfer", source, target, tokens, vectors, init, Limits(time_limit_s=120))
        method = get_transfer(name)

        class V:
            def __init__(self, m):
                self.tokens, self.matrix = tokens, torch.from_numpy(m)

        method.fit(V(source), V(target))
        expected = method.map_words(torch.from_numpy(vectors), init).numpy()
        np.testing.assert_allclose(mapped, expected, rtol=1e-5, atol=1e-5, err_msg=name)
        assert describe, name


def test_run_with_a_transfer_submission_matches_the_builtin(tiny_tasks, tmp_path) -> None:
    out = tmp_path / "runs"
    assert CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2")).exit_code == 0
    res = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--transfer", str(REPO / "submissions" / "ref-lstsq")))
    assert res.exit_code == 0, res.output
    files = results_of(out)
    builtin, submitted = read_result(files["lstsq"]), read_result(files["ref-lstsq"])
    assert submitted.value == pytest.approx(builtin.value, abs=1e-9)
    assert submitted.per_concept == pytest.approx(builtin.per_concept, abs=1e-9)
    sub = submitted.transfer_params["submission"]
    assert sub["name"] == "ref-lstsq" and len(sub["sha256"]) == 64 and submitted.transfer_params["reported"]["solver"] == "numpy.linalg.lstsq"
    assert submitted.transfer_params["sandbox"]["network_isolation"] in ("unshare -rnmipf", "audit hook only")


def test_run_with_a_linear_map_file(tiny_tasks, tmp_path) -> None:
    clip, owl = load_model(tiny_tasks, "clip"), load_model(tiny_tasks, "owlv2")
    lstsq = get_transfer("lstsq").fit(clip.vocabulary(), owl.vocabulary())
    path = linear_map(tmp_path / "map.safetensors", lstsq.T.T.contiguous(), source_vocab_hash=clip.vocabulary().hash(), target_vocab_hash=owl.vocabulary().hash())
    out = tmp_path / "runs"
    res = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--transfer", str(path)))
    assert res.exit_code == 0, res.output
    stored = read_result(results_of(out)["my-map"])
    assert stored.transfer_params["submission"]["kind"] == "linear-map"
    # an analysis rebuilds the submitted map from its path, and only while the file is the one the run used
    analyze = ["analyze", "neighbors", "--result", str(results_of(out)["my-map"]), "--k", "1", "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", str(tmp_path / "nb")]
    assert CliRunner().invoke(app, analyze).exit_code == 0
    linear_map(path, 2 * lstsq.T.T.contiguous(), source_vocab_hash=clip.vocabulary().hash(), target_vocab_hash=owl.vocabulary().hash())
    changed = CliRunner().invoke(app, analyze)
    assert changed.exit_code != 0 and "changed since this run" in str(changed.exception)
    linear_map(path, lstsq.T.T.contiguous(), source_vocab_hash=clip.vocabulary().hash(), target_vocab_hash=owl.vocabulary().hash())
    # the wrong pair, and a map made for other checkpoints, are refused before anything runs
    wrong = CliRunner().invoke(app, run_args(tiny_tasks, tmp_path / "o2", "owlv2->clip", "--transfer", str(path)))
    assert wrong.exit_code != 0 and "is for clip->owlv2" in str(wrong.exception)
    other = linear_map(tmp_path / "other.safetensors", lstsq.T.T.contiguous(), target_vocab_hash=owl.vocabulary().hash())
    proc = subprocess.run([sys.executable, "-m", "vwbench.cli", *run_args(tiny_tasks, tmp_path / "o3", "clip->owlv2", "--transfer", str(other))], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "source_vocab_hash" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "o3").exists()  # nor the --out folder it made (its lock files included)


def test_run_with_an_embeddings_file(tiny_tasks, tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)  # the file is given relative to the project folder, as a check subset needs
    path, words, vocab = tiny_clip_words(tiny_tasks, Path("words.safetensors"))
    out = tmp_path / "runs"
    res = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--embeddings", str(path)))
    assert res.exit_code == 0, res.output
    stored = read_result(results_of(out)["my-words+lstsq"])  # the words' own entry, never lstsq's trained-word result
    assert len(stored.per_word) == 3 and stored.provenance.words_file == str(path)
    assert (stored.n_trials, stored.steps) == (1, 0)  # the file's one word per concept, nothing trained here
    assert stored.transfer_params["embeddings"]["sha256"] and stored.transfer_params["embeddings"]["transfer"] == "lstsq"
    assert not (out / "words").exists()  # nothing was trained
    # `vwbench check` repeats it from the file, with the transfer that carried it
    board = tmp_path / "board"
    assert CliRunner().invoke(app, ["leaderboard", "--results", str(out / "results"), "--out", str(board), "--check", "all"]).exit_code == 0
    (entry,) = json.loads((board / "leaderboard.json").read_text())["check"]["entries"]
    assert (entry["embeddings_path"], entry["transfer_path"], entry["transfer"]) == (str(path), "lstsq", "my-words+lstsq")
    rerun = CliRunner().invoke(app, ["check", "--baseline", str(board / "leaderboard.json"), "--tasks-dir", str(tiny_tasks)])
    assert rerun.exit_code == 0 and "ok: 1 value(s) within tolerance" in rerun.output, rerun.output
    for bad, message, early in (
        (embeddings(tmp_path / "b1.safetensors", words, vocab_hash="c" * 64), "vocab_hash", False),
        (embeddings(tmp_path / "b2.safetensors", {"circle": words["circle"]}, vocab_hash=vocab.hash()), "no words for concepts ['square', 'triangle']", True),
        (embeddings(tmp_path / "b3.safetensors", words, vocab_hash=vocab.hash(), model="owlv2"), "the task's source model is clip", True),
    ):
        proc = subprocess.run([sys.executable, "-m", "vwbench.cli", *run_args(tiny_tasks, tmp_path / "o", "clip->owlv2", "--embeddings", str(bad))], capture_output=True, text=True, timeout=300)
        # the error is one line, after the progress bars of the stages it needed (data, source model)
        lines = proc.stderr.splitlines()
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert lines[-1].startswith("error: ") and message in lines[-1], proc.stderr
        # finished stages only (stderr is no terminal: plain lines, not bars)
        assert all(re.fullmatch(r"(data|load) \S+( \.\.\.|: done in \d+:\d\d:\d\d)", line) for line in lines[:-1]), proc.stderr
        assert (len(lines) == 1) == early, proc.stderr  # what needs no model is refused before any loads
    assert not (tmp_path / "o" / "results").exists()
    # finite but absurd values overflow inside the target: one line before evaluation, not a metric's traceback
    huge = embeddings(tmp_path / "huge.safetensors", {c: w * 1e30 for c, w in words.items()}, vocab_hash=vocab.hash())
    proc = subprocess.run([sys.executable, "-m", "vwbench.cli", *run_args(tiny_tasks, tmp_path / "o", "clip->owlv2", "--embeddings", str(huge))], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "gave word vectors of norm up to" in proc.stderr.splitlines()[-1], proc.stderr
    assert not (tmp_path / "o" / "results").exists()


def test_a_hostile_submission_fails_the_run_cleanly(tiny_tasks, tmp_path) -> None:
    folder = transfer_folder(tmp_path, hostile("import socket", "socket.socket()"), name="sneaky")
    out = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "vwbench.cli", *run_args(tiny_tasks, out, "clip->owlv2", "--transfer", str(folder))], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "submission sneaky: raised in fit(): PermissionError" in proc.stderr
    assert not (out / "results").exists() or not list((out / "results").rglob("*.json"))


def test_validate_with_a_tier_compares_the_file_with_its_checkpoints(tiny_tasks, tmp_path, monkeypatch) -> None:
    """`vwbench validate --tier` finds what a run would refuse (another checkpoint's vocabulary, a
    width no model has, a dataset or concepts the tier lacks) without running anything."""
    clip, owl = load_model(tiny_tasks, "clip"), load_model(tiny_tasks, "owlv2")
    hashes = {"source_vocab_hash": clip.vocabulary().hash(), "target_vocab_hash": owl.vocabulary().hash()}
    good_weight = torch.zeros(owl.vocabulary().dim, clip.vocabulary().dim)

    def validate(path: Path, tier: str = "tiny"):
        return CliRunner().invoke(app, ["validate", str(path), "--tier", tier, "--tasks-dir", str(tiny_tasks), "--json"])

    res = validate(linear_map(tmp_path / "good.safetensors", good_weight, **hashes))
    assert res.exit_code == 0 and json.loads(res.output)["tier"] == "tiny: fits its checkpoints", res.output
    wide = linear_map(tmp_path / "wide.safetensors", torch.zeros(owl.vocabulary().dim, clip.vocabulary().dim + 1), **hashes)
    assert CliRunner().invoke(app, ["validate", str(wide)]).exit_code == 0  # the file alone is well-formed
    report = json.loads(validate(wide).output)
    assert not report["ok"] and report["problems"] == [f"weight is [{owl.vocabulary().dim}, {clip.vocabulary().dim + 1}], the models need [{owl.vocabulary().dim}, {clip.vocabulary().dim}] (d_target, d_source)"]
    report = json.loads(validate(linear_map(tmp_path / "other.safetensors", good_weight)).output)
    assert [p.split(" ")[0] for p in report["problems"]] == ["source_vocab_hash", "target_vocab_hash"]

    vocab = clip.vocabulary()
    words = {c: torch.zeros(4, vocab.dim) for c in ("circle", "square", "triangle")}
    assert validate(embeddings(tmp_path / "w.safetensors", words, vocab_hash=vocab.hash())).exit_code == 0
    report = json.loads(validate(embeddings(tmp_path / "w2.safetensors", {"circle": words["circle"], "hexagon": words["square"]}, vocab_hash=vocab.hash())).output)
    assert report["problems"] == ["no words for concepts ['square', 'triangle']", "words for concepts the dataset does not have: ['hexagon']"]
    report = json.loads(validate(embeddings(tmp_path / "w3.safetensors", words, vocab_hash=vocab.hash(), dataset="nowhere")).output)
    assert len(report["problems"]) == 1 and report["problems"][0].startswith("metadata dataset: ") and "nowhere" in report["problems"][0]
    huge = {c: torch.full((4, vocab.dim), 1e30) for c in words}
    report = json.loads(validate(embeddings(tmp_path / "huge.safetensors", huge, vocab_hash=vocab.hash())).output)
    assert len(report["problems"]) == 1 and report["problems"][0].startswith("word vectors of norm up to")
    long_words = {c: torch.zeros(40, vocab.dim) for c in words}  # the tiny CLIP's context is 32
    report = json.loads(validate(embeddings(tmp_path / "long.safetensors", long_words, vocab_hash=vocab.hash())).output)
    assert report["problems"] == [clip.family + ": words of 40 vectors do not fit its prompt (prompt of 45 tokens exceeds context length 32); "
                                  "the submitted words are too long for it: submit words of fewer vectors"]
    unknown = validate(embeddings(tmp_path / "w4.safetensors", words, vocab_hash=vocab.hash()), tier="nope")
    assert unknown.exit_code != 0 and "tier" in str(unknown.exception)
    # an unknown tier is found before a transfer method's dry run (which takes seconds to minutes)
    import importlib

    validate_module = importlib.import_module("vwbench.submissions.validate")  # the package's `validate` is the function

    def no_dry_run(*args, **kwargs):
        raise AssertionError("the dry run started before --tier was checked")

    monkeypatch.setattr(validate_module, "dry_run", no_dry_run)
    unknown = CliRunner().invoke(app, ["validate", str(REPO / "submissions" / "ref-lstsq"), "--tier", "nope", "--tasks-dir", str(tiny_tasks)])
    assert unknown.exit_code != 0 and "unknown tier 'nope'" in str(unknown.exception)


def test_a_linear_map_given_as_embeddings_is_sent_to_transfer_before_anything_loads(tiny_tasks, tmp_path) -> None:
    path = linear_map(tmp_path / "map.safetensors", torch.zeros(3, 3))
    out = tmp_path / "o"
    res = CliRunner().invoke(app, run_args(tiny_tasks, out, "clip->owlv2", "--embeddings", str(path)))
    assert str(res.exception) == f"--embeddings {path}: this is a linear-map file; pass it with --transfer"
    assert "load clip" not in res.output and not out.exists()
