"""Mutation round 11 pins on the analyses, without runs: the default name of an analysis file,
the t-SNE settings and figure, the truncation figure's axes, the JSON-and-PNG pair (format,
closed figure, a PNG cropped to its content), the delta-sweep table and plot, and reopening a
run (a words file beside the result, a tensor file that is not an embeddings submission)."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace as NS

import numpy as np
import pytest

from vwbench.analysis import default_stem
from vwbench.analysis.layers import truncation_figure, tsne_2d, tsne_figure
from vwbench.analysis.plotting import png_bytes, pyplot, save_json_and_png
from vwbench.analysis.sweep import SweepRow, markdown_table, sweep_figure
from vwbench.errors import UserError

plt = pyplot()


def test_the_default_stem_names_the_analysis_and_the_result_without_its_suffix() -> None:
    assert default_stem("neighbors", Path("runs/results/clip-run.json")) == Path("runs/results/analysis-neighbors-clip-run")
    assert default_stem("tsne", Path("r/run-0.5.json")) == Path("r/analysis-tsne-run-0.5")


# ------------------------------------------------------------------ t-SNE


@pytest.mark.parametrize(("n", "perplexity"), [(7, 2.0), (4, 1.0), (91, 30.0), (200, 30.0)])
def test_tsne_perplexity_is_a_third_of_the_other_points_capped_at_30(monkeypatch, n, perplexity) -> None:
    import openTSNE

    seen = {}

    class FakeTSNE:
        def __init__(self, **kwargs):
            seen.update(kwargs)

        def fit(self, points):
            seen["dtype"] = points.dtype
            return points[:, :2]

    monkeypatch.setattr(openTSNE, "TSNE", FakeTSNE)
    out = tsne_2d(np.ones((n, 3), dtype=np.float32), seed=5)
    assert out.shape == (n, 2)
    assert seen == {"n_components": 2, "perplexity": perplexity, "neighbors": "exact", "random_state": 5, "n_jobs": 1, "verbose": False,
                    "dtype": np.float64}


def test_tsne_figure_columns_follow_the_block_numbers_with_their_titles() -> None:
    xy = np.array([[0.0, 0.0], [1.0, 1.0]])
    fig = tsne_figure({24: xy, 1: xy, 8: xy}, ["cat", "dog"], ["ring", "ring"], 24, "t")
    titles = [[ax.get_title() for ax in row] for row in np.array(fig.axes).reshape(2, 3)]
    assert titles == [
        ["block 1/24, by concept", "block 8/24, by concept", "block 24/24, by concept"],
        ["block 1/24, by anchor word", "block 8/24, by anchor word", "block 24/24, by anchor word"],
    ]
    plt.close(fig)



def test_tsne_colours_cycle_through_the_ten_tab10_colours() -> None:
    names = [f"c{i}" for i in range(11)]
    xy = np.arange(22, dtype=np.float64).reshape(11, 2)
    fig = tsne_figure({1: xy}, names, names, 24, "t")
    colours = [tuple(points.get_facecolor()[0]) for points in fig.axes[0].collections]
    assert len(colours) == 11 and len(set(colours[:10])) == 10
    assert colours[10] == colours[0] == tuple(plt.get_cmap("tab10")(0))
    plt.close(fig)

def test_truncation_figure_plots_accuracy_on_a_fixed_0_to_1_axis() -> None:
    fig = truncation_figure([{"layers": 1, "accuracy": 0.25}, {"layers": 3, "accuracy": 0.5}], 3, "t")
    ax = fig.axes[0]
    (line,) = ax.lines
    assert line.get_xdata().tolist() == [1, 3] and line.get_ydata().tolist() == [0.25, 0.5]
    assert ax.get_ylim() == (-0.02, 1.02) and ax.get_xlabel() == "text-encoder blocks used (of 3)" and ax.get_title() == "t"
    plt.close(fig)


# ------------------------------------------------------------------ files


def test_the_json_beside_a_png_has_sorted_keys_indented_and_ends_with_a_newline(tmp_path) -> None:
    fig = truncation_figure([{"layers": 1, "accuracy": 0.5}], 2, "t")
    json_path, png_path = save_json_and_png(tmp_path / "run-0.5", {"b": 1, "a": [2]}, fig)
    assert (json_path.name, png_path.name) == ("run-0.5.json", "run-0.5.png")
    assert json_path.read_text() == '{\n  "a": [\n    2\n  ],\n  "b": 1\n}\n'
    assert not plt.fignum_exists(fig.number)  # rendered and closed


def test_a_png_is_cropped_to_its_content_so_a_legend_beside_the_plots_is_kept() -> None:
    from PIL import Image

    xy = np.array([[0.0, 0.0], [1.0, 1.0]])
    fig = tsne_figure({1: xy}, ["a long concept name", "another long concept name"], ["ring", "ring"], 24, "t")
    width = fig.get_figwidth() * 120  # the figure's own width at the PNG's 120 dpi: the legend lies beyond it
    with Image.open(io.BytesIO(png_bytes(fig))) as image:
        assert image.width > width


# ------------------------------------------------------------------ delta sweep


def test_a_sweep_with_delta_zero_keeps_a_linear_axis() -> None:
    rows = [SweepRow("clip->clip", "d", d, "accuracy", 0.5, 0.4, 0.6, "r") for d in (0.0, 0.5, 1.0)]
    fig = sweep_figure(rows, "t")
    assert fig.axes[0].get_xscale() == "linear"
    plt.close(fig)
    fig = sweep_figure(rows[1:], "t")
    assert fig.axes[0].get_xscale() == "log" and [t.get_text() for t in fig.axes[0].get_xticklabels()] == ["0.5", "1"]
    plt.close(fig)


def test_sweep_table_rows_keep_the_tasks_first_seen_order() -> None:
    rows = [SweepRow("sd->clip", "d", 0.5, "map", 0.5, 0.4, 0.6, "a"), SweepRow("clip->clip", "d", 0.5, "accuracy", 0.25, 0.2, 0.3, "b")]
    assert markdown_table(rows).splitlines()[2:] == ["| sd->clip | map | 0.500 [0.400, 0.600] |", "| clip->clip | accuracy | 0.250 [0.200, 0.300] |"]


# ------------------------------------------------------------------ reopening a run


def test_a_relative_words_file_is_read_beside_the_result(tmp_path, monkeypatch) -> None:
    import vwbench.analysis.context as context

    result = NS(task="clip->owlv2", dataset="d", provenance=NS(words_file="words/w.safetensors"), transfer_params=None)
    beside = tmp_path / "results" / "words" / "w.safetensors"
    monkeypatch.setattr(context, "read_result", lambda path: result)
    monkeypatch.setattr(context, "load_wordset", lambda path: "the words" if path == beside else None)
    registry = NS(get=lambda task, dataset: ("spec", task, dataset))
    opened = context.open_run(tmp_path / "results" / "r.json", registry)
    assert (opened.words, opened.task, opened.path) == ("the words", ("spec", "clip->owlv2", "d"), tmp_path / "results" / "r.json")
    monkeypatch.setattr(context, "load_wordset", lambda path: None)
    with pytest.raises(UserError, match=r"r.json: its trained words words/w.safetensors are missing or unreadable"):
        context.open_run(tmp_path / "results" / "r.json", registry)


def test_a_tensor_file_without_a_vocabulary_hash_is_not_an_embeddings_submission(tmp_path) -> None:
    import torch
    from safetensors.torch import save_file

    import vwbench.analysis.context as context

    path = tmp_path / "words.safetensors"
    save_file({"circle": torch.zeros(1, 2)}, str(path), metadata={"format": "vwbench.words/1"})

    def no_model(spec):
        raise AssertionError("no model is loaded for a file that is not a submission")

    assert context._submitted_words(path, NS(source=NS(family="clip")), NS(get=no_model)) is None
