"""A submitted transfer that cannot work is refused before the words are trained: a run fits it
on the real vocabularies and maps one word first (hours of training on the paper tier were
otherwise spent before the error)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from vwbench.transfer import get_transfer

from .helpers import LSTSQ_BODY, linear_map, transfer_folder
from .test_run_submissions import load_model, run_args

NARROW_BODY = """
import numpy as np

class Transfer:
    def fit(self, source, target, tokens):
        pass

    def map(self, vectors):
        return np.zeros((vectors.shape[0], 3), dtype=np.float32)
"""


def _run(tiny_tasks, out, transfer):
    return subprocess.run([sys.executable, "-m", "vwbench.cli", *run_args(tiny_tasks, out, "clip->owlv2", "--transfer", str(transfer))],
                          capture_output=True, text=True, timeout=300)


def test_a_submission_mapping_to_the_wrong_width_fails_before_training(tiny_tasks, tmp_path) -> None:
    out = tmp_path / "runs"
    proc = _run(tiny_tasks, out, transfer_folder(tmp_path, NARROW_BODY, name="narrow"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "submission narrow: map() returned 3-dim vectors, the target model's are" in proc.stderr
    assert not out.exists()  # no word trained, no feature cached: the --out folder it made is gone


def test_a_linear_map_for_other_checkpoints_fails_before_training(tiny_tasks, tmp_path) -> None:
    clip, owl = load_model(tiny_tasks, "clip"), load_model(tiny_tasks, "owlv2")
    weight = get_transfer("lstsq").fit(clip.vocabulary(), owl.vocabulary()).T.T.contiguous()
    out = tmp_path / "runs"
    proc = _run(tiny_tasks, out, linear_map(tmp_path / "map.safetensors", weight, target_vocab_hash=owl.vocabulary().hash()))
    assert proc.returncode == 2 and "source_vocab_hash" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    assert not out.exists()


def test_a_working_submission_is_fitted_again_on_the_run(tiny_tasks, tmp_path) -> None:
    """The preflight's one-word map is not what the result records: the run maps every word."""
    from vwbench.results import read_result

    out = tmp_path / "runs"
    proc = _run(tiny_tasks, out, transfer_folder(tmp_path, LSTSQ_BODY, name="mine"))
    assert proc.returncode == 0, proc.stderr
    (path,) = (out / "results").rglob("*.json")
    result = read_result(path)
    assert result.transfer.startswith("mine") and len(result.per_word) == 6
    assert torch.isfinite(torch.tensor(list(result.per_concept.values()))).all()


@pytest.mark.parametrize("jobs", [[], ["--words-per-job", "2"]])  # words inside the task's run, or word jobs first
def test_a_sweep_tries_a_submitted_transfer_before_its_word_jobs(tiny_tasks, tmp_path, jobs) -> None:
    """With word jobs, a sweep trains its words before any task prepares its transfer: the
    driver fits and tries the submission first, so no word is trained for a method that cannot
    work (without them, the task's run tries it before training)."""
    out = tmp_path / "runs"
    narrow = transfer_folder(tmp_path, NARROW_BODY, name="narrow")
    args = ["sweep", "--suite", "tiny", "--pair", "clip->owlv2", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu",
            "--threads", "1", "--transfer", str(narrow), *jobs]
    proc = subprocess.run([sys.executable, "-m", "vwbench.cli", *args], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    last = proc.stderr.splitlines()[-1]
    assert last.startswith("error: ") and "submission narrow: map() returned 3-dim vectors" in last
    assert not list(out.rglob("*.safetensors"))  # no word trained


BATCH_BODY = """
import numpy as np

class Transfer:
    def fit(self, source, target, tokens):
        self.T = np.linalg.lstsq(source.astype(np.float64), target.astype(np.float64), rcond=None)[0]

    def map(self, vectors):
        if vectors.shape[0] < 6:  # e.g. a method that whitens the batch of words
            raise ValueError("needs a batch of words")
        return vectors @ self.T
"""


def test_the_preflight_maps_words_shaped_like_the_runs(tiny_tasks, tmp_path) -> None:
    """A method that needs a batch of words (the run maps 3 concepts x 2 trials x 4 vectors
    here) is not refused by a one-row try: the preflight maps one word per concept with the
    run's vector count."""
    out = tmp_path / "runs"
    proc = _run(tiny_tasks, out, transfer_folder(tmp_path, BATCH_BODY, name="batchy"))
    assert proc.returncode == 0, proc.stderr
    assert len(list((out / "results").rglob("*.json"))) == 1
