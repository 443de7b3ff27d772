"""Pins of the analyses' arithmetic (mutation-testing round 5): nearest words by Euclidean
distance, the evenly spaced text-encoder blocks, the truncation accuracy (a share of all images)
and the delta-sweep table. Expected values are worked out by hand in the comments."""

from __future__ import annotations

import math
from types import SimpleNamespace as NS

import pytest
import torch

from vwbench.analysis.layers import check_layers, even_layers, truncation_accuracy
from vwbench.analysis.neighbors import nearest_words, neighbor_report
from vwbench.analysis.sweep import SweepRow, markdown_table
from vwbench.errors import UserError
from vwbench.models.base import Vocabulary

# four 2-d rows: dog (0, 0), cat (3, 0), cup (0, 4), bird (3, 4); "bird" has no end-of-word mark
VOCAB = Vocabulary(["dog</w>", "cat</w>", "cup</w>", "bird"], torch.tensor([[0.0, 0.0], [3.0, 0.0], [0.0, 4.0], [3.0, 4.0]]))
# two words of two vectors each, [W=2, n=2, d=2]
VECTORS = torch.tensor([[[1.0, 0.0], [0.0, 3.5]], [[3.0, 3.9], [2.0, 0.0]]])


def r5(x: float) -> float:
    return round(x, 5)


# Euclidean distances, nearest three:
#   (1, 0):   dog 1, cat 2, cup sqrt(1 + 16)               (bird sqrt(4 + 16))
#   (0, 3.5): cup 0.5, bird sqrt(9 + 0.25), dog 3.5         (cat sqrt(9 + 12.25))
#   (3, 3.9): bird 0.1, cup sqrt(9 + 0.01), cat 3.9         (dog sqrt(9 + 15.21))
#   (2, 0):   cat 1, dog 2, bird sqrt(1 + 16)               (cup sqrt(4 + 16))
# (by L1 distance cup would be 5 from (1, 0) and 3.1 from (3, 3.9))
EXPECTED = [
    [[("dog", 1.0), ("cat", 2.0), ("cup", r5(math.sqrt(17)))], [("cup", 0.5), ("bird", r5(math.sqrt(9.25))), ("dog", 3.5)]],
    [[("bird", 0.1), ("cup", r5(math.sqrt(9.01))), ("cat", 3.9)], [("cat", 1.0), ("dog", 2.0), ("bird", r5(math.sqrt(17)))]],
]


def test_nearest_words_are_ranked_by_euclidean_distance_per_word_and_vector() -> None:
    got = nearest_words(VECTORS, VOCAB, 3)
    assert [[[t for t, _ in vec] for vec in word] for word in got] == [[[t for t, _ in vec] for vec in word] for word in EXPECTED]
    for word, want_word in zip(got, EXPECTED):
        for vec, want_vec in zip(word, want_word):
            assert [d for _, d in vec] == pytest.approx([d for _, d in want_vec], abs=1e-9)
    assert got[0][1][1][1] == 3.04138  # sqrt(9.25) = 3.0413812..., kept to 5 decimals


def test_nearest_words_with_k_beyond_the_vocabulary_lists_every_token() -> None:
    got = nearest_words(VECTORS[:1, :1], VOCAB, 10)
    assert got == [[[("dog", 1.0), ("cat", 2.0), ("cup", r5(math.sqrt(17))), ("bird", r5(math.sqrt(20)))]]]


def test_neighbor_report_takes_source_words_from_the_trained_and_target_words_from_the_mapped() -> None:
    target = Vocabulary(["ring</w>", "star</w>"], torch.tensor([[0.0, 0.0], [10.0, 10.0]]))
    words = NS(concepts=["circle", "square"], trials=[0, 1], init_words=["dog", "cat"])
    mapped = torch.tensor([[[9.0, 10.0]], [[0.0, 1.0]]])  # star (distance 1), ring (distance 1)
    report = neighbor_report(words, VOCAB, VECTORS[:, :1], target, mapped, 1)
    assert report == [
        {"concept": "circle", "trial": 0, "init_word": "dog", "source": [[("dog", 1.0)]], "target": [[("star", 1.0)]]},
        {"concept": "square", "trial": 1, "init_word": "cat", "source": [[("bird", 0.1)]], "target": [[("ring", 1.0)]]},
    ]


# ---- the text encoder's blocks -------------------------------------------------------------------


@pytest.mark.parametrize(("total", "layers"), [
    (24, [1, 8, 16, 24]),  # the paper's: 24 * i / 3 for i = 1, 2, 3
    (23, [1, 8, 15, 23]),  # 23/3 = 7.67 -> 8, 46/3 = 15.33 -> 15
    (12, [1, 4, 8, 12]),
    (5, [1, 2, 3, 5]),  # 5/3 = 1.67 -> 2, 10/3 = 3.33 -> 3
    (4, [1, 2, 3, 4]),  # no more blocks than picks: every block
    (2, [1, 2]),
])
def test_even_layers(total, layers) -> None:
    assert even_layers(total) == layers


def test_the_documented_sd21_layers_are_the_defaults_of_its_23_block_encoder() -> None:
    """SD 2.1's diffusers text encoder has 23 blocks (the paper's "24-block encoder" counts
    OpenCLIP ViT-H's last block, which SD 2.x does not use): README's example and the defaults
    must be blocks that exist, and block 24 is refused with the range."""
    from pathlib import Path

    from vwbench.perf.paper_tier import SD21_TEXT

    total = SD21_TEXT["num_hidden_layers"]
    assert even_layers(total) == [1, 8, 15, 23]
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "[--layers 1,8,15,23]" in readme and "1,8,16,24" not in readme
    with pytest.raises(UserError, match=r"--layers \[24\] out of range: this text encoder has blocks 1\.\.23"):
        check_layers([1, 8, 16, 24], total)


def test_check_layers_accepts_1_to_total_sorted_once_and_refuses_block_0() -> None:
    assert check_layers([24, 1, 24, 12], 24) == [1, 12, 24]
    with pytest.raises(UserError, match=r"--layers \[0\] out of range"):
        check_layers([0, 1], 24)
    with pytest.raises(UserError, match=r"--layers \[25\] out of range"):
        check_layers([25], 24)


class _StubSD:
    """Three text blocks; each generation records how many blocks the encoder had."""

    def __init__(self) -> None:
        self._text = NS(encoder=NS(layers=torch.nn.ModuleList([torch.nn.Identity() for _ in range(3)])))
        self.blocks_used: list[int] = []

    def generate(self, vectors, generations, steps, seed, guidance):
        self.blocks_used.append(len(self._text.encoder.layers))
        return [[f"w{w}g{g}" for g in range(generations)] for w in range(vectors.shape[0])]


def test_truncation_accuracy_is_the_share_of_all_images_and_restores_the_encoder() -> None:
    # judge's labels per word: cat word 0 [cat, cat], cat word 1 [cat, dog], dog word [cat, cat]
    labels = {"w0": ["cat", "cat"], "w1": ["cat", "dog"], "w2": ["cat", "cat"]}
    judge = NS(classify_images=lambda images, concepts: labels[images[0][:2]])
    sd = _StubSD()
    rows = truncation_accuracy(sd, judge, torch.zeros(3, 1, 2), ["cat", "cat", "dog"], ["cat", "dog"], [1, 3],
                               generations=2, steps=1, guidance=1.0, seed=0)
    assert sd.blocks_used == [1, 3] and len(sd._text.encoder.layers) == 3
    # cat: 3 of 4 images, dog: 0 of 2; all words: 3 of 6 (not the mean of the concepts, 0.375)
    assert rows == [{"layers": n, "accuracy": 0.5, "per_concept": {"cat": 0.75, "dog": 0.0}} for n in (1, 3)]


def test_the_encoder_is_restored_when_generation_fails() -> None:
    sd = _StubSD()

    def fail(*args):
        raise RuntimeError("out of memory")

    sd.generate = fail
    with pytest.raises(RuntimeError):
        truncation_accuracy(sd, None, torch.zeros(1, 1, 2), ["cat"], ["cat"], [1], generations=1, steps=1, guidance=1.0, seed=0)
    assert len(sd._text.encoder.layers) == 3


# ---- the delta-sweep table -----------------------------------------------------------------------


def test_the_sweep_table_sorts_deltas_and_marks_a_missing_cell() -> None:
    rows = [
        SweepRow("clip->clip", "d", 0.5, "accuracy", 0.25, 0.125, 0.375, "a.json"),
        SweepRow("clip->clip", "d", 0.1, "accuracy", 0.8, 0.7004, 0.9, "b.json"),
        SweepRow("sd->clip", "d", 0.5, "map", 0.33333, 0.0, 1.0, "c.json"),
    ]
    assert markdown_table(rows) == (
        "| task | metric | delta 0.1 | delta 0.5 |\n"
        "|---|---|---:|---:|\n"
        "| clip->clip | accuracy | 0.800 [0.700, 0.900] | 0.250 [0.125, 0.375] |\n"
        "| sd->clip | map | - | 0.333 [0.000, 1.000] |\n"
    )


# ---- reopening a run -----------------------------------------------------------------------------


def test_a_fractured_runs_words_are_coloured_by_their_anchor_and_others_by_their_init_word() -> None:
    from vwbench.analysis.context import OpenedRun

    words = NS(concepts=["circle", "square", "circle"], init_words=["dog", "cat", "cup"])
    fractured = OpenedRun(None, NS(fracture={"delta": 0.5, "anchors": {"circle": "ring"}}), None, words)
    assert fractured.word_anchors == ["ring", "cat", "ring"]  # square has no anchor entry: its init word
    assert OpenedRun(None, NS(fracture=None), None, words).word_anchors == ["dog", "cat", "cup"]


def test_models_are_cached_per_checkpoint_not_per_family(monkeypatch, tmp_path) -> None:
    import vwbench.analysis.context as context
    import vwbench.runner as runner

    loads = []
    monkeypatch.setattr(context, "resolve_checkpoint", lambda checkpoint, weights_dir: NS(path=tmp_path / checkpoint))
    monkeypatch.setattr(runner, "load_adapter", lambda family, path, device, dtype: loads.append((family, path.name, dtype)) or f"{family}:{path.name}")
    models = context.Models(torch.device("cpu"))
    assert models.get(NS(family="clip", checkpoint="a")) == "clip:a"
    assert models.get(NS(family="clip", checkpoint="b")) == "clip:b"
    assert models.get(NS(family="clip", checkpoint="a")) == "clip:a"
    assert loads == [("clip", "a", torch.float32), ("clip", "b", torch.float32)]  # each loaded once, in float32 on a CPU


def test_layer_analyses_use_the_mapped_words_when_sd_is_the_target() -> None:
    from vwbench.analysis.context import sd_words

    models = object()
    to_sd = NS(task=NS(name="clip->sd", source=NS(family="clip"), target=NS(family="sd")), path="r.json",
               target=lambda m: ("target", m), source=lambda m: ("source", m), mapped=lambda m: "mapped",
               words=NS(vectors=torch.ones(1, 1, 2, dtype=torch.float16)))
    assert sd_words(to_sd, models) == (("target", models), "mapped")
    from_sd = NS(**{**vars(to_sd), "task": NS(name="sd->clip", source=NS(family="sd"), target=NS(family="clip"))})
    model, vectors = sd_words(from_sd, models)
    assert model == ("source", models) and vectors.dtype == torch.float32 and vectors.tolist() == [[[1.0, 1.0]]]
    neither = NS(**{**vars(to_sd), "task": NS(name="clip->owlv2", source=NS(family="clip"), target=NS(family="owlv2"))})
    with pytest.raises(UserError, match="involves no generation model"):
        sd_words(neither, models)


def test_the_sweep_plot_draws_each_interval_from_its_low_to_its_high_end() -> None:
    from vwbench.analysis.sweep import sweep_figure

    rows = [SweepRow("clip->clip", "d", 0.5, "accuracy", 0.25, 0.125, 0.375, "a"), SweepRow("clip->clip", "d", 0.1, "accuracy", 0.8, 0.7, 0.9, "b")]
    fig = sweep_figure(rows, "t")
    (container,) = fig.axes[0].containers
    line, _, (bars,) = container.lines
    assert line.get_xdata().tolist() == [0.1, 0.5] and line.get_ydata().tolist() == [0.8, 0.25]  # sorted by delta
    assert [seg.tolist() for seg in bars.get_segments()] == [[[0.1, 0.7], [0.1, 0.9]], [[0.5, 0.125], [0.5, 0.375]]]
    assert fig.axes[0].get_xscale() == "log"


def _embeddings_run(tiny_tasks, tmp_path):
    """Run clip->owlv2 on submitted words (the clip rows of the concept names); returns the
    result's path and a function that rewrites the words file scaled by a factor."""
    from typer.testing import CliRunner

    from tests.submissions.helpers import embeddings
    from vwbench.cli import app
    from vwbench.models.clip import OpenClipAdapter

    clip = OpenClipAdapter.from_pretrained(tiny_tasks.parent / "clip")
    path = tmp_path / "words.safetensors"

    def write(factor: float) -> None:
        embeddings(path, {c: clip.token_vectors([c]).repeat(4, 1) * factor for c in ("circle", "square", "triangle")}, vocab_hash=clip.vocabulary().hash())

    write(1.0)
    run = ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path / "runs"), "--device", "cpu", "--embeddings", str(path)]
    assert CliRunner().invoke(app, run).exit_code == 0
    (result,) = (tmp_path / "runs" / "results").rglob("*.json")
    return result, write


def test_an_analysis_refuses_embeddings_changed_since_the_run(tiny_tasks, tmp_path) -> None:
    from typer.testing import CliRunner

    from vwbench.cli import app

    result, write = _embeddings_run(tiny_tasks, tmp_path)
    write(2.0)
    res = CliRunner().invoke(app, ["analyze", "neighbors", "--result", str(result), "--k", "1", "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", str(tmp_path / "nb")])
    assert res.exit_code != 0 and "changed since this run" in str(res.exception)
    assert not (tmp_path / "nb.json").exists()


def test_tsne_needs_four_words() -> None:
    import numpy as np

    from vwbench.analysis.layers import tsne_2d

    with pytest.raises(UserError, match="t-SNE needs at least 4 words, the given results hold 3"):
        tsne_2d(np.arange(6, dtype=np.float64).reshape(3, 2))


def test_an_analysis_out_that_is_a_folder_gets_the_default_name_inside_it(tiny_tasks, tmp_path) -> None:
    from typer.testing import CliRunner

    from vwbench.cli import app

    result, _ = _embeddings_run(tiny_tasks, tmp_path)
    folder = tmp_path / "analyses"
    folder.mkdir()
    res = CliRunner().invoke(app, ["analyze", "neighbors", "--result", str(result), "--k", "1", "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", str(folder)])
    assert res.exit_code == 0, res.output
    written = folder / f"analysis-neighbors-{result.stem}.json"
    assert [p.name for p in folder.iterdir()] == [written.name] and f"written: {written}" in res.output
    assert not (tmp_path / "analyses.json").exists()


def test_an_analysis_out_ending_in_a_slash_is_a_new_folder_for_the_default_name(tiny_tasks, tmp_path) -> None:
    """`--out analyses/` with no such folder yet wrote `analyses.json` beside it: the trailing
    slash was lost when the option became a path."""
    from typer.testing import CliRunner

    from vwbench.cli import app

    result, _ = _embeddings_run(tiny_tasks, tmp_path)
    folder = tmp_path / "new" / "analyses"
    res = CliRunner().invoke(app, ["analyze", "neighbors", "--result", str(result), "--k", "1", "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", f"{folder}/"])
    assert res.exit_code == 0, res.output
    written = folder / f"analysis-neighbors-{result.stem}.json"
    assert [p.name for p in folder.iterdir()] == [written.name] and f"written: {written}" in res.output
    assert not (tmp_path / "new" / "analyses.json").exists()


def test_an_analysis_of_a_run_from_another_tasks_folder_says_to_pass_it(tiny_tasks, tmp_path) -> None:
    from typer.testing import CliRunner

    from vwbench.cli import app

    result, _ = _embeddings_run(tiny_tasks, tmp_path)
    res = CliRunner().invoke(app, ["analyze", "neighbors", "--result", str(result), "--k", "1", "--device", "cpu", "--out", str(tmp_path / "nb")])
    message = str(res.exception)
    assert isinstance(res.exception, UserError) and "\n" not in message
    assert message.startswith(f"{result}: unknown dataset 'synth-tiny'") and "pass it with --tasks-dir (this command read " in message
    assert not (tmp_path / "nb.json").exists()
