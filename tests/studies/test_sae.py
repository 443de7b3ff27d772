"""The sae study on embeddings with planted structure: known sparse directions, modality-specific
directions, one planted image->text bridge, and pure noise for contrast."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from vwbench.errors import UserError
from vwbench.studies import sae_metrics as sm
from vwbench.studies.sae import SaeSettings, fit, prepare_embeddings, run_sae_study, with_overrides

D, N_IMG, N_TXT, N_BOTH, S = 32, 8, 8, 8, 3
K = N_IMG + N_TXT + N_BOTH
BRIDGE_A, BRIDGE_B = 0, N_IMG  # an image-only and a text-only direction, planted as a bridge

SETTINGS = SaeSettings(
    n_concepts=32, topk_levels=(1, 3, 6), l1_levels=(0.01, 0.03, 0.1), steps=800, batch_size=128,
    n_seeds=2, reference_level=3, top_bridges=5,
)


def planted(n: int = 600, seed: int = 0, bridge_cos: float = 0.6, p_bridge: float = 0.25,
            noise: float = 0.01) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Aligned image/text rows, each a nonnegative sum of S unit directions of a known dictionary.

    Directions 0..7 are used only by images, 8..15 only by texts, 16..23 by both. Image row n uses
    direction A exactly when text row n uses B, and cos(A, B) = bridge_cos.
    """
    rng = np.random.default_rng(seed)
    dic = rng.standard_normal((K, D))
    dic /= np.linalg.norm(dic, axis=1, keepdims=True)
    orth = dic[BRIDGE_B] - (dic[BRIDGE_B] @ dic[BRIDGE_A]) * dic[BRIDGE_A]
    dic[BRIDGE_B] = bridge_cos * dic[BRIDGE_A] + math.sqrt(1 - bridge_cos**2) * orth / np.linalg.norm(orth)
    shared = np.arange(N_IMG + N_TXT, K)
    img_pool = np.r_[np.arange(1, N_IMG), shared]
    txt_pool = np.r_[np.arange(N_IMG + 1, N_IMG + N_TXT), shared]
    bridged = rng.random(n) < p_bridge

    def rows(pool: np.ndarray, bridge: int) -> np.ndarray:
        x = np.zeros((n, D))
        for i in range(n):
            atoms = list(rng.choice(pool, S - int(bridged[i]), replace=False)) + ([bridge] if bridged[i] else [])
            x[i] = rng.uniform(0.5, 1.5, len(atoms)) @ dic[atoms]
        return x + noise * rng.standard_normal((n, D))

    return rows(img_pool, BRIDGE_A), rows(txt_pool, BRIDGE_B), dic


@pytest.fixture(scope="module")
def planted_study():
    img, txt, dic = planted()
    report = run_sae_study(torch.from_numpy(img).float(), torch.from_numpy(txt).float(), SETTINGS)
    cos = dic @ report.reference_dictionary.T
    return report, dic, cos.max(axis=1), cos.argmax(axis=1)


def test_topk_recovers_planted_directions(planted_study) -> None:
    _, _, best, _ = planted_study
    assert (best > 0.9).sum() >= 20, np.round(best, 3)
    assert np.median(best) > 0.98


def test_reconstruction_error_falls_as_sparsity_loosens(planted_study) -> None:
    report = planted_study[0]
    topk = sorted((r for r in report.sweep if r.kind == "topk"), key=lambda r: r.level)
    assert [r.l0 for r in topk] == pytest.approx([1, 3, 6], abs=0.05)
    assert topk[0].fvu > topk[1].fvu + 0.2
    assert topk[1].fvu < 0.1  # k = the true sparsity explains nearly all variance...
    assert topk[2].fvu <= topk[1].fvu + 0.002  # ...so a looser k can only match or improve it
    relu = sorted((r for r in report.sweep if r.kind == "relu_l1"), key=lambda r: r.level)
    assert relu[0].l0 > relu[1].l0 > relu[2].l0  # stronger L1, sparser codes
    assert relu[0].fvu < relu[2].fvu


def test_modality_share_of_matched_concepts(planted_study) -> None:
    report, _, best, match = planted_study
    shares = np.array(report.concept_shares)
    ok = best > 0.9
    img_only, txt_only, both = np.arange(N_IMG), np.arange(N_IMG, N_IMG + N_TXT), np.arange(N_IMG + N_TXT, K)
    assert (shares[match[img_only[ok[img_only]]]] > 0.9).all()
    assert (shares[match[txt_only[ok[txt_only]]]] < 0.1).all()
    assert np.all(np.abs(shares[match[both[ok[both]]]] - 0.5) < 0.2)
    assert report.modality.n_image_only >= 6 and report.modality.n_text_only >= 6


def test_planted_bridge_is_a_top_pair(planted_study) -> None:
    report, _, best, match = planted_study
    assert best[BRIDGE_A] > 0.9 and best[BRIDGE_B] > 0.9
    pair = (int(match[BRIDGE_A]), int(match[BRIDGE_B]))
    top = [(b.i, b.j) for b in report.bridges[:3]]
    assert pair in top, (pair, report.bridges[:3])
    hit = next(b for b in report.bridges if (b.i, b.j) == pair)
    assert hit.coactivation > 0.8 and hit.cosine == pytest.approx(0.6, abs=0.1)
    assert hit.share_i > 0.9 and hit.share_j < 0.1


def test_stability_planted_beats_noise(planted_study) -> None:
    report = planted_study[0]
    m = report.metrics()
    rng = np.random.default_rng(1)
    noise = rng.standard_normal((600, D)), rng.standard_normal((600, D))
    noise_m = run_sae_study(*noise, with_overrides(SETTINGS, kinds=("topk",), topk_levels=(3,))).metrics()
    assert m["stability/seed/frequent"] > 0.9 and m["stability/data/frequent"] > 0.9
    assert m["stability/seed/mean"] > m["stability/chance"] + 0.3
    assert m["stability/seed/mean"] > noise_m["stability/seed/mean"] + 0.2
    assert m["stability/data/mean"] > noise_m["stability/data/mean"] + 0.2


def test_stability_leaves_dead_concepts_out_and_reports_the_untrained_start() -> None:
    """A dead concept keeps its starting row: counted, it scores the starts' similarity, not what
    training learned. Here one dictionary's live rows match, and its dead rows are identical starts
    that would have pulled the mean up to 1."""
    from vwbench.studies import sae_metrics as sm

    rng = np.random.default_rng(0)
    live_a, live_b = rng.standard_normal((4, 8)), rng.standard_normal((4, 8))  # unrelated live concepts
    dead = rng.standard_normal((4, 8))
    a, b = np.vstack([live_a, dead]), np.vstack([live_b, dead])
    freq = np.array([0.3, 0.2, 0.1, 0.05, 0, 0, 0, 0])
    row = sm.stability_row("seed", "s0", "s1", a, b, freq, freq, init_a=a, init_b=a)
    matched, _ = sm.match_dictionaries(live_a, live_b)
    assert row.mean == pytest.approx(float(matched.mean())) and row.mean < 0.9
    assert (row.alive_a, row.alive_b) == (4, 4) and row.init == pytest.approx(1.0)  # same starts
    all_rows, _ = sm.match_dictionaries(a, b)
    assert float(all_rows.mean()) > row.mean  # what counting the dead rows reported


def test_report_is_flat_finite_and_json(planted_study) -> None:
    report = planted_study[0]
    m = report.metrics()
    assert all(isinstance(v, float) and math.isfinite(v) for v in m.values())
    for name in ("sweep/topk/k3/fvu", "sweep/relu_l1/l1=0.03/l0", "reference/fvu", "stability/seed/rare",
                 "stability/data/mean", "modality/frac_bimodal", "bridge/top_score"):
        assert name in m
    d = json.loads(json.dumps(report.to_dict(), allow_nan=False))
    assert len(d["concept_shares"]) == 32 and d["reference"] == {"kind": "topk", "level": 3.0}
    assert {"i", "j", "score", "coactivation", "cosine", "share_i", "share_j"} <= set(d["bridges"][0])


def test_fit_is_deterministic_and_leaves_global_rng() -> None:
    img, txt, _ = planted(n=64)
    x = torch.cat(prepare_embeddings(img, txt))
    settings = with_overrides(SETTINGS, steps=20)
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a = fit(x, x, "relu_l1", 0.03, settings, seed=5)
    assert torch.rand(1) == before
    b = fit(x, x, "relu_l1", 0.03, settings, seed=5)
    np.testing.assert_array_equal(a.dictionary, b.dictionary)
    np.testing.assert_array_equal(a.codes, b.codes)


def test_matching_recovers_a_permutation() -> None:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((10, 6))
    perm = rng.permutation(10)
    matched, partner = sm.match_dictionaries(a, 3.0 * a[perm])
    np.testing.assert_allclose(matched, 1.0)
    np.testing.assert_array_equal(perm[partner], np.arange(10))


def test_modality_shares_and_summary() -> None:
    zi = np.array([[1.0, 0.0, 1.0, 0.0], [1.0, 0.0, 1.0, 0.0]])
    zt = np.array([[0.0, 2.0, 1.0, 0.0], [0.0, 2.0, 1.0, 0.0]])
    shares = sm.modality_shares(zi, zt)
    np.testing.assert_allclose(shares[:3], [1.0, 0.0, 0.5])
    assert np.isnan(shares[3])
    s = sm.modality_summary(shares, np.r_[zi, zt].sum(axis=0))
    assert (s.n_alive, s.n_image_only, s.n_text_only, s.n_bimodal) == (3, 1, 1, 1)
    assert s.mass_frac_unimodal == pytest.approx(6 / 10)
    assert sum(s.histogram_counts) == 3


@pytest.mark.parametrize(("img", "txt", "match"), [
    (np.ones((20, 8)), np.ones((21, 8)), "20 rows but text_emb has 21"),
    (np.ones((20, 8)), np.ones((20, 9)), "d=8 but text_emb has d=9"),
    (np.ones((4, 8)), np.ones((4, 8)), "only 4 image-text pairs"),
    (np.ones(8), np.ones(8), "2-D float tensor"),
    (np.r_[np.ones((19, 8)), np.full((1, 8), np.nan)], np.ones((20, 8)), "non-finite"),
    (np.ones((20, 8)), np.r_[np.zeros((1, 8)), np.ones((19, 8))], "all-zero row"),
    ([["a"] * 8] * 20, np.ones((20, 8)), "not a numeric array"),
])
def test_bad_inputs_raise_user_error(img, txt, match) -> None:
    with pytest.raises(UserError, match=match):
        run_sae_study(img, txt, SETTINGS)


@pytest.mark.parametrize(("changes", "match"), [
    ({"kinds": ("batchtopk",)}, "unknown SAE kind"),
    ({"topk_levels": (3, 64)}, "must be integers in"),
    ({"n_seeds": 1}, "at least 2 seeds"),
    ({"reference_level": 5}, "not in the topk sweep"),
    ({"l1_levels": (-0.1,)}, "positive finite"),
    ({"steps": 0}, "steps and batch_size must be"),
])
def test_bad_settings_raise_user_error(changes, match) -> None:
    img, txt, _ = planted(n=20)
    with pytest.raises(UserError, match=match):
        run_sae_study(img, txt, with_overrides(SETTINGS, **changes))
    with pytest.raises(UserError, match="unknown sae setting"):
        with_overrides(SETTINGS, epochs=3)
