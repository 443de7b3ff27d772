"""Layer analyses of Stable Diffusion's text encoder (Trabucco et al. 2024, Section 5, Figure 7).

* **Truncation**: condition generation on the output of the encoder's first ``N`` blocks (then its
  final layer norm, as the UNet expects normalised states) and let the judge label the images.
* **t-SNE**: the pooled (end-of-text) token's activation after block ``N``, for ``N`` at evenly
  spaced layers, embedded in 2-d with openTSNE; points are
  coloured by the word's target concept and by its anchor (or init) word. The paper reports early
  layers clustering by anchor word and only the last ones by concept.

The paper names layers 1, 8, 16 and 24 of "SD's 24-block text encoder". The checkpoint SD 2.1 runs
(diffusers' ``text_encoder``) has 23 blocks: SD 2.x conditions on the second-to-last block of
OpenCLIP ViT-H/14's 24, then the final layer norm, and the 24th block is not shipped. Block numbers
here are the loaded encoder's, so on SD 2.1 the defaults are 1, 8, 15, 23 and 24 is out of range.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import torch

from vwbench.analysis.plotting import pyplot, save_png
from vwbench.errors import UserError
from vwbench.progress import NullReporter, Reporter


def n_blocks(sd: Any) -> int:
    return len(sd._text.encoder.layers)


def even_layers(total: int, count: int = 4) -> list[int]:
    """``count`` evenly spaced 1-based block numbers from 1 to ``total`` (1, 8, 16, 24 for 24 blocks;
    1, 8, 15, 23 for SD 2.1's 23)."""
    if total <= count:
        return list(range(1, total + 1))
    picks = [1] + [round(total * i / (count - 1)) for i in range(1, count)]
    return sorted(dict.fromkeys(max(1, min(total, p)) for p in picks))


def check_layers(layers: Sequence[int], total: int) -> list[int]:
    if not layers:
        raise UserError(f"--layers names no block: give comma-separated block numbers in 1..{total} (e.g. 1,{total}), or leave --layers out for four evenly spaced ones")
    bad = [n for n in layers if not 1 <= n <= total]
    if bad:
        raise UserError(f"--layers {bad} out of range: this text encoder has blocks 1..{total}")
    return sorted(dict.fromkeys(layers))


@contextmanager
def truncated(sd: Any, n: int) -> Iterator[None]:
    """Run only the first ``n`` blocks of the SD adapter's text encoder inside the block."""
    encoder = sd._text.encoder
    full = encoder.layers
    encoder.layers = torch.nn.ModuleList(list(full)[:n])
    try:
        yield
    finally:
        encoder.layers = full


@torch.no_grad()
def truncation_accuracy(sd: Any, judge: Any, vectors: torch.Tensor, word_concepts: Sequence[str], concepts: Sequence[str], layers: Sequence[int], *, generations: int, steps: int, guidance: float, seed: int, reporter: Reporter | None = None) -> list[dict]:
    """Per ``N`` in ``layers``: generation accuracy (share of images the judge labels as the
    word's concept) over all words, and per concept. ``reporter`` gets one stage step per ``N``."""
    rows = []
    with (reporter or NullReporter()).stage(f"generate with truncated text encoders ({len(vectors)} words)", total=len(layers)) as stage:
        for n in layers:
            with truncated(sd, n):
                images = sd.generate(vectors, generations, steps, seed, guidance)
            hits: dict[str, list[float]] = {}
            for concept, word_images in zip(word_concepts, images):
                labels = judge.classify_images(word_images, list(concepts))
                hits.setdefault(concept, []).extend(float(label == concept) for label in labels)
            per_concept = {c: float(np.mean(v)) for c, v in hits.items()}
            accuracy = float(np.mean([x for v in hits.values() for x in v]))
            rows.append({"layers": n, "accuracy": accuracy, "per_concept": per_concept})
            stage.advance(blocks=n, accuracy=accuracy)
    return rows


def plot_truncation(rows: Sequence[dict], total: int, path: Path, title: str) -> Path:
    return save_png(truncation_figure(rows, total, title), path)


def truncation_figure(rows: Sequence[dict], total: int, title: str) -> Any:
    """Generation accuracy against the number of text-encoder blocks used (a matplotlib figure)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["layers"] for r in rows], [r["accuracy"] for r in rows], marker="o")
    ax.set_xlabel(f"text-encoder blocks used (of {total})")
    ax.set_ylabel("generation accuracy")
    ax.set_ylim(-0.02, 1.02)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    return fig


@torch.no_grad()
def pooled_activations(sd: Any, vectors: torch.Tensor, layers: Sequence[int]) -> dict[int, np.ndarray]:
    """The end-of-text token's hidden state after each block in ``layers`` (1-based), ``[W, d]``."""
    captured: dict[int, torch.Tensor] = {}
    handles = []
    for n in layers:
        def hook(_module, _inputs, output, n=n):
            captured[n] = output[0] if isinstance(output, tuple) else output

        handles.append(sd._text.encoder.layers[n - 1].register_forward_hook(hook))
    try:
        _, eos = sd.encode_word_states(vectors)
    finally:
        for h in handles:
            h.remove()
    return {n: captured[n][:, eos].float().cpu().numpy() for n in layers}


def tsne_2d(points: np.ndarray, seed: int = 0) -> np.ndarray:
    """openTSNE embedding of ``points [N, d]`` (exact neighbours; perplexity capped for small N)."""
    from openTSNE import TSNE

    n = points.shape[0]
    if n < 4:
        raise UserError(f"t-SNE needs at least 4 words, the given results hold {n}")
    perplexity = float(max(1.0, min(30.0, (n - 1) / 3)))
    tsne = TSNE(n_components=2, perplexity=perplexity, neighbors="exact", random_state=seed, n_jobs=1, verbose=False)
    return np.asarray(tsne.fit(points.astype(np.float64)))


def plot_tsne(embeddings: dict[int, np.ndarray], concepts: Sequence[str], anchors: Sequence[str], total: int, path: Path, title: str) -> Path:
    return save_png(tsne_figure(embeddings, concepts, anchors, total, title), path)


def tsne_figure(embeddings: dict[int, np.ndarray], concepts: Sequence[str], anchors: Sequence[str], total: int, title: str) -> Any:
    """Two rows (coloured by target concept, by anchor word) x one column per layer."""
    plt = pyplot()
    layers = sorted(embeddings)
    if not layers:
        raise UserError("t-SNE plot: no layers to show; give --layers block numbers")
    fig, axes = plt.subplots(2, len(layers), figsize=(3.2 * len(layers), 6.4), squeeze=False)
    cmap = plt.get_cmap("tab10")
    for row, (labels, what) in enumerate(((concepts, "concept"), (anchors, "anchor word"))):
        names = list(dict.fromkeys(labels))
        colour = {name: cmap(i % 10) for i, name in enumerate(names)}
        for col, n in enumerate(layers):
            ax = axes[row][col]
            xy = embeddings[n]
            for name in names:
                mask = np.array([label == name for label in labels])
                ax.scatter(xy[mask, 0], xy[mask, 1], s=14, color=colour[name], label=name)
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"block {n}/{total}, by {what}", fontsize=9)
        axes[row][-1].legend(fontsize=6, loc="center left", bbox_to_anchor=(1.0, 0.5))
    fig.suptitle(title)
    return fig
