"""Measurements on trained sparse autoencoders (SAEs) over image and text embeddings.

Pure numpy/scipy functions of dictionaries (``[c, d]``, unit-norm rows) and nonnegative codes
(``[rows, c]``); no training here. They follow "Interpreting the Linear Structure of
Vision-Language Model Embedding Spaces" (Papadimitriou et al., arXiv 2504.11695):

* reconstruction: fraction of variance unexplained (FVU = 1 - R²) and mean L0;
* stability: Hungarian matching of two dictionaries on cosine similarity,
  ``Stability(D, D') = max_P (1/c) Tr(D P D'ᵀ)``, split by how often a concept fires;
* modality share: ``E_image[z_i] / (E_image[z_i] + E_text[z_i])`` (the paper's modality score);
* Bridge Score: co-activation on aligned image-text pairs times geometric alignment of the two
  decoder directions (see :func:`bridge_matrices` for the normalisation chosen here).
"""

from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment

FREQUENCY_BUCKETS = ("rare", "medium", "frequent")


def fraction_variance_unexplained(x: np.ndarray, x_hat: np.ndarray) -> float:
    """``Σ‖x - x̂‖² / Σ‖x - x̄‖²`` over all rows (x̄: the mean row). 0 is perfect, 1 is the mean."""
    total = float(np.square(x - x.mean(axis=0, keepdims=True)).sum())
    if total <= 0.0:
        return 0.0 if float(np.square(x - x_hat).sum()) == 0.0 else float("inf")
    return float(np.square(x - x_hat).sum()) / total


def mean_l0(codes: np.ndarray) -> float:
    """Mean number of active (> 0) concepts per row."""
    return float((codes > 0).sum(axis=1).mean())


def firing_frequency(codes: np.ndarray) -> np.ndarray:
    """Share of rows on which each concept is active, ``[c]``."""
    return (codes > 0).mean(axis=0)


def match_dictionaries(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hungarian matching of the rows of ``a`` to rows of ``b`` maximising total cosine.

    Returns ``(matched_cosine [c_a], partner [c_a])``: for each row of ``a`` the cosine to its
    partner row in ``b`` (both dictionaries need the same size for every row to get a partner).
    """
    a_n = a / np.linalg.norm(a, axis=1, keepdims=True).clip(min=1e-12)
    b_n = b / np.linalg.norm(b, axis=1, keepdims=True).clip(min=1e-12)
    cos = a_n @ b_n.T
    rows, cols = linear_sum_assignment(cos, maximize=True)
    matched = np.full(a.shape[0], np.nan)
    partner = np.full(a.shape[0], -1, dtype=np.int64)
    matched[rows] = cos[rows, cols]
    partner[rows] = cols
    return matched, partner


def frequency_buckets(freq: np.ndarray) -> dict[str, np.ndarray]:
    """Concept indices split into terciles by firing frequency (ties broken by index).

    Dead concepts (frequency 0) fall into ``rare``.
    """
    order = np.argsort(freq, kind="stable")
    return dict(zip(FREQUENCY_BUCKETS, np.array_split(order, len(FREQUENCY_BUCKETS))))


@dataclass
class StabilityRow:
    """Mean matched cosine between the *live* concepts of two dictionaries (those that fire on
    the data), overall and by firing-frequency tercile of the first run's live concepts; and
    ``init``, the same matching between the two runs' untrained starting dictionaries.

    Dead concepts are left out: they never receive a gradient, so they keep their starting
    direction (a training row, :func:`vwbench.studies.sae._init_from_data`), and two such starts
    already match closely on data whose rows are alike. ``init`` is that no-learning level."""

    comparison: str  # "seed" or "data"
    run_a: str
    run_b: str
    mean: float
    rare: float
    medium: float
    frequent: float
    init: float = float("nan")
    alive_a: int = 0
    alive_b: int = 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def stability_row(comparison: str, run_a: str, run_b: str, dict_a: np.ndarray, dict_b: np.ndarray,
                  freq_a: np.ndarray, freq_b: np.ndarray, init_a: np.ndarray, init_b: np.ndarray) -> StabilityRow:
    """Match the live rows of ``dict_a`` to those of ``dict_b`` and summarise the matched cosines
    (a live row of the larger side may stay unmatched and is left out); ``init_*`` are the runs'
    starting dictionaries, matched over the same rows."""
    live_a, live_b = np.flatnonzero(freq_a > 0), np.flatnonzero(freq_b > 0)
    if live_a.size == 0 or live_b.size == 0:
        nan = float("nan")
        return StabilityRow(comparison, run_a, run_b, nan, nan, nan, nan, nan, int(live_a.size), int(live_b.size))
    matched, _ = match_dictionaries(dict_a[live_a], dict_b[live_b])
    start, _ = match_dictionaries(init_a[live_a], init_b[live_b])
    with warnings.catch_warnings():  # a tercile of few live concepts may be empty
        warnings.simplefilter("ignore", RuntimeWarning)
        by_bucket = {name: float(np.nanmean(matched[idx])) for name, idx in frequency_buckets(freq_a[live_a]).items()}
        return StabilityRow(comparison, run_a, run_b, float(np.nanmean(matched)), **by_bucket,
                            init=float(np.nanmean(start)), alive_a=int(live_a.size), alive_b=int(live_b.size))


def random_dictionary_stability(dictionary: np.ndarray, seed: int) -> float:
    """Mean matched cosine between ``dictionary`` and as many random unit directions: the chance
    level a stability value should be read against."""
    rng = np.random.default_rng([seed, 0x5AE])  # its own stream, not the data generator's
    random = rng.standard_normal(dictionary.shape)
    matched, _ = match_dictionaries(dictionary, random)
    return float(np.nanmean(matched))


def modality_shares(codes_image: np.ndarray, codes_text: np.ndarray) -> np.ndarray:
    """Each concept's share of activation mass on image rows, ``[c]``; NaN for concepts that
    never fire. 1.0: image-only, 0.0: text-only."""
    e_img = codes_image.mean(axis=0)
    e_txt = codes_text.mean(axis=0)
    total = e_img + e_txt
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, e_img / np.where(total > 0, total, 1.0), np.nan)


@dataclass
class ModalitySummary:
    """How concepts split by modality. Fractions are over concepts that fire at all."""

    n_alive: int
    n_image_only: int
    n_text_only: int
    n_bimodal: int
    frac_image_only: float
    frac_text_only: float
    frac_bimodal: float
    mass_frac_unimodal: float  # share of all activation mass carried by unimodal concepts
    threshold: float
    histogram_edges: list[float]
    histogram_counts: list[int]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def modality_summary(shares: np.ndarray, mass: np.ndarray, threshold: float = 0.95,
                     bins: int = 10) -> ModalitySummary:
    """Counts of image-only (share > threshold), text-only (share < 1 - threshold) and bimodal
    concepts, plus a histogram of shares. ``mass``: each concept's total activation."""
    alive = ~np.isnan(shares)
    s = shares[alive]
    image_only = s > threshold
    text_only = 1.0 - s > threshold  # not s < 1 - threshold: 1 - 0.95 is 0.050000000000000044, so 0.05 was text-only
    bimodal = ~(image_only | text_only)
    n = int(alive.sum())
    counts, edges = np.histogram(s, bins=bins, range=(0.0, 1.0))
    m = mass[alive]
    total_mass = float(m.sum())
    uni_mass = float(m[image_only | text_only].sum())

    def frac(k: int) -> float:
        return k / n if n else 0.0

    return ModalitySummary(
        n_alive=n,
        n_image_only=int(image_only.sum()),
        n_text_only=int(text_only.sum()),
        n_bimodal=int(bimodal.sum()),
        frac_image_only=frac(int(image_only.sum())),
        frac_text_only=frac(int(text_only.sum())),
        frac_bimodal=frac(int(bimodal.sum())),
        mass_frac_unimodal=uni_mass / total_mass if total_mass > 0 else 0.0,
        threshold=threshold,
        histogram_edges=[float(e) for e in edges],
        histogram_counts=[int(c) for c in counts],
    )


def bridge_matrices(codes_image: np.ndarray, codes_text: np.ndarray,
                    dictionary: np.ndarray) -> dict[str, np.ndarray]:
    """Concept-pair matrices ``[c, c]`` over aligned pairs (row n of both code arrays is one pair).

    * ``raw[i, j] = E_pairs[z_img_i · z_txt_j]``, the paper's co-activation term;
    * ``cosine[i, j] = cos(d_i, d_j)`` of the decoder directions;
    * ``paper[i, j] = raw ⊙ cosine``, the paper's ``B = E[z_img z_txtᵀ] ⊙ DDᵀ`` (unit atoms);
    * ``coactivation[i, j] = raw / sqrt(E[z_img_i²] E[z_txt_j²])``: the uncentred cosine of the
      two activation profiles, in [0, 1] since codes are nonnegative. It is 1 when concept i on the
      image and concept j on the caption fire together with proportional strength, whatever
      their magnitudes or frequencies;
    * ``score[i, j] = coactivation ⊙ max(cosine, 0)``: the Bridge Score ranked here.

    Why not rank by ``paper``: its scale grows with the energy of both concepts, so the most
    frequent (often modality-encoding) concepts top the list even without a specific pairing; the
    normalised co-activation keeps the paper's two factors (co-activation × alignment) but ranks a
    rare, tightly paired bridge as high as a frequent one. Negative cosines are clipped to 0: an
    anti-aligned pair does not carry one modality towards the other.
    """
    n = codes_image.shape[0]
    zi = codes_image.astype(np.float64)
    zt = codes_text.astype(np.float64)
    raw = zi.T @ zt / n
    ni = np.sqrt(np.square(zi).mean(axis=0))
    nt = np.sqrt(np.square(zt).mean(axis=0))
    denom = np.outer(ni, nt)
    coact = np.divide(raw, denom, out=np.zeros_like(raw), where=denom > 0)
    d = dictionary.astype(np.float64)
    d = d / np.linalg.norm(d, axis=1, keepdims=True).clip(min=1e-12)
    cosine = d @ d.T
    return {
        "raw": raw,
        "cosine": cosine,
        "paper": raw * cosine,
        "coactivation": coact,
        "score": coact * np.clip(cosine, 0.0, None),
    }


@dataclass
class BridgePair:
    """One bridging concept pair: concept ``i`` on the image, concept ``j`` on its caption."""

    rank: int
    i: int
    j: int
    score: float
    coactivation: float
    cosine: float
    paper_score: float
    share_i: float  # image share of concept i's activation mass (NaN-free: -1 if dead)
    share_j: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def top_bridges(matrices: dict[str, np.ndarray], shares: np.ndarray, top_k: int,
                include_self: bool = False) -> list[BridgePair]:
    """The ``top_k`` pairs with the highest positive Bridge Score. ``include_self=False`` leaves out
    ``i == j`` (a bimodal concept trivially "bridges" itself at cosine 1)."""
    score = matrices["score"].copy()
    if not include_self:
        np.fill_diagonal(score, 0.0)
    flat = score.ravel()
    k = min(top_k, int((flat > 0).sum()))
    if k == 0:
        return []
    idx = np.argpartition(-flat, k - 1)[:k]
    idx = idx[np.lexsort((idx, -flat[idx]))]  # by score, then index, for determinism
    c = score.shape[1]
    safe = np.nan_to_num(shares, nan=-1.0)
    out = []
    for rank, f in enumerate(idx, start=1):
        i, j = divmod(int(f), c)
        out.append(BridgePair(
            rank=rank, i=i, j=j, score=float(score[i, j]),
            coactivation=float(matrices["coactivation"][i, j]), cosine=float(matrices["cosine"][i, j]),
            paper_score=float(matrices["paper"][i, j]), share_i=float(safe[i]), share_j=float(safe[j]),
        ))
    return out
