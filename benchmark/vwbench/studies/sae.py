"""Sparse autoencoders on a CLIP model's image and text embeddings (the ``sae`` study).

A runnable version of "Interpreting the Linear Structure of Vision-Language Model Embedding
Spaces" (Papadimitriou et al., arXiv 2504.11695) on aligned pairs ``image_emb[n] ↔ text_emb[n]``:

1. reconstruction (FVU) vs sparsity (mean L0) for TopK and ReLU+L1 SAEs over a sweep of levels;
2. stability of the learned dictionary across seeds and across two disjoint halves of the pairs
   (Hungarian matching on cosine of the concepts that fire; dead ones keep their starting row),
   split by firing frequency, beside the same matching of the untrained starting dictionaries;
3. each concept's modality share (image vs text activation mass);
4. the Bridge Score between concept pairs and the top bridging pairs.

Preprocessing: every embedding is L2-normalised to the unit sphere (as CLIP's similarity uses
it); image and text rows are stacked and one SAE is trained on the union. By default the
modalities are *not* centred, so the modality gap stays in the data and the SAE may spend
concepts on it, as in the paper; ``center=True`` subtracts each modality's mean first and
renormalises. The SAE modules (``TopKSAE``, and ``SAE`` with its linear+ReLU encoder for the L1
variant), unit-norm dictionary, cosine learning-rate schedule and training loop are
`overcomplete`'s; the losses are written here: per-row squared error (summed over dimensions,
so coefficients do not depend on ``d``) plus the L1 term on the codes for ``relu_l1``.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
import torch

from vwbench.compat.overcomplete_sae import import_overcomplete_sae
from vwbench.errors import UserError
from vwbench.registry.schema import MAX_SEED
from vwbench.studies import sae_metrics as sm

KINDS = ("topk", "relu_l1")
MIN_PAIRS = 16


@dataclass(frozen=True)
class SaeSettings:
    """What to train and measure. Defaults: ~30 s of one CPU core for 2,000 pairs at d = 128
    (10 SAEs of 512 concepts, 1,000 Adam steps each: the 6 sweep levels, 2 more seeds and 2 data halves).

    ``topk_levels``: k values swept for TopK; ``l1_levels``: L1 coefficients swept for ReLU.
    ``reference``: the (kind, level) whose dictionary the stability, modality and bridge analyses
    use (level ``None``: the middle level of that kind's sweep). ``n_seeds`` runs of the reference
    (seeds ``seed, seed+1, ...``) are compared pairwise; two more are trained on disjoint halves of
    the pairs. ``n_concepts`` overrides ``expansion * d``. ``steps`` counts optimizer steps
    (rounded up to whole epochs).
    """

    kinds: tuple[str, ...] = KINDS
    expansion: float = 4.0
    n_concepts: int | None = None
    topk_levels: tuple[int, ...] = (4, 8, 16)
    l1_levels: tuple[float, ...] = (0.03, 0.1, 0.3)
    steps: int = 1000
    batch_size: int = 128
    lr: float = 5e-3
    final_lr_fraction: float = 0.1
    warmup_fraction: float = 0.05
    clip_grad: float = 1.0
    n_seeds: int = 3
    seed: int = 0
    center: bool = False
    reference_kind: str = "topk"
    reference_level: float | None = None
    unimodal_threshold: float = 0.95
    top_bridges: int = 10
    bridge_include_self: bool = False

    @classmethod
    def paper_tier(cls) -> SaeSettings:
        """Our larger tier for full-size CLIP embeddings (d = 512-768, ~10⁵ pairs, GPU advised):
        an 8x dictionary, L0 from 8 to 64, longer training. Chosen here, not copied from the paper
        (which trains BatchTopK SAEs on ~600k COCO embeddings)."""
        return cls(expansion=8.0, topk_levels=(8, 16, 32, 64), l1_levels=(0.003, 0.01, 0.03, 0.1),
                   steps=20000, batch_size=1024, lr=1e-3)

    def levels(self, kind: str) -> tuple[float, ...]:
        return tuple(self.topk_levels) if kind == "topk" else tuple(self.l1_levels)

    def concepts_for(self, dim: int) -> int:
        return int(self.n_concepts) if self.n_concepts is not None else max(1, int(round(self.expansion * dim)))

    def reference(self) -> tuple[str, float]:
        levels = self.levels(self.reference_kind)
        if self.reference_level is not None:
            return self.reference_kind, self.reference_level
        return self.reference_kind, sorted(levels)[len(levels) // 2]

    def __post_init__(self) -> None:
        if self.seed + self.n_seeds - 1 > MAX_SEED:  # the stability runs use seed, seed+1, ...
            raise UserError(f"seed {self.seed} with n_seeds={self.n_seeds}: the stability runs' seeds pass {MAX_SEED} (the largest torch takes); give a seed of at most {MAX_SEED - self.n_seeds + 1}")

    def check(self, dim: int) -> None:
        """Raise UserError for settings that cannot run on ``dim``-dimensional embeddings."""
        bad = [k for k in self.kinds if k not in KINDS]
        if bad or not self.kinds:
            raise UserError(f"unknown SAE kind(s) {bad or '(none given)'}; choose from {list(KINDS)}")
        if self.reference_kind not in self.kinds:
            raise UserError(f"reference_kind {self.reference_kind!r} is not among kinds {list(self.kinds)}; add it or pick one of them")
        c = self.concepts_for(dim)
        if c < 3:
            raise UserError(f"the dictionary has {c} concepts; raise expansion or n_concepts to at least 3")
        for kind in self.kinds:
            if not self.levels(kind):
                raise UserError(f"no sparsity levels given for {kind}; set {'topk_levels' if kind == 'topk' else 'l1_levels'}")
        if "topk" in self.kinds and any(int(k) != k or not 1 <= k <= c for k in self.topk_levels):
            raise UserError(f"topk_levels {list(self.topk_levels)} must be integers in [1, {c}] (the dictionary size)")
        if "relu_l1" in self.kinds and any(not (np.isfinite(v) and v > 0) for v in self.l1_levels):
            raise UserError(f"l1_levels {list(self.l1_levels)} must be positive finite numbers")
        if self.reference_level is not None and self.reference_level not in self.levels(self.reference_kind):
            raise UserError(f"reference_level {self.reference_level} is not in the {self.reference_kind} sweep {list(self.levels(self.reference_kind))}; add it there")
        if self.n_seeds < 2:
            raise UserError(f"n_seeds={self.n_seeds}: seed stability needs at least 2 seeds")
        if self.steps < 1 or self.batch_size < 1 or not self.lr > 0:
            raise UserError(f"steps={self.steps}, batch_size={self.batch_size} and lr={self.lr}: steps and batch_size must be >= 1 and lr > 0")
        if not 0.5 < self.unimodal_threshold < 1.0:
            raise UserError(f"unimodal_threshold {self.unimodal_threshold} must lie in (0.5, 1)")
        if not isinstance(self.top_bridges, (int, np.integer)) or isinstance(self.top_bridges, bool) or self.top_bridges < 1:
            raise UserError(f"top_bridges {self.top_bridges} must be an integer >= 1 (how many bridge pairs the report lists)")

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


def _as_matrix(x: Any, name: str) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().to("cpu", torch.float64).numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError) as e:
        raise UserError(f"{name} is not a numeric array ({e}); pass a float tensor [N, d]") from None
    if arr.ndim != 2:
        raise UserError(f"{name} has shape {tuple(arr.shape)}; pass a 2-D float tensor [N, d] (one row per pair)")
    return arr


def prepare_embeddings(image_emb: Any, text_emb: Any, center: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Check aligned embeddings and return them unit-normalised (optionally modality-centred) as
    float32 tensors ``[N, d]`` each. Raises UserError on mismatched or unusable input."""
    img = _as_matrix(image_emb, "image_emb")
    txt = _as_matrix(text_emb, "text_emb")
    if img.shape[1] != txt.shape[1]:
        raise UserError(f"image_emb has d={img.shape[1]} but text_emb has d={txt.shape[1]}; embed both with the same CLIP model")
    if img.shape[0] != txt.shape[0]:
        raise UserError(f"image_emb has {img.shape[0]} rows but text_emb has {txt.shape[0]}; pass aligned pairs (row n of each = one image-caption pair)")
    if img.shape[0] < MIN_PAIRS:
        raise UserError(f"only {img.shape[0]} image-text pairs; the sae study needs at least {MIN_PAIRS} (split into halves for stability)")
    for name, arr in (("image_emb", img), ("text_emb", txt)):
        if not np.isfinite(arr).all():
            rows = np.flatnonzero(~np.isfinite(arr).all(axis=1))
            raise UserError(f"{name} has non-finite values in {rows.size} row(s) (first: {int(rows[0])}); drop or re-embed those pairs")
    out = []
    for name, arr in (("image_emb", img), ("text_emb", txt)):
        arr = _unit_rows(arr, name)
        if center:
            arr = _unit_rows(arr - arr.mean(axis=0, keepdims=True), f"{name} (after centring)")
        out.append(torch.from_numpy(arr.astype(np.float32)))
    return out[0], out[1]


def _unit_rows(arr: np.ndarray, name: str) -> np.ndarray:
    norms = np.linalg.norm(arr, axis=1, keepdims=True)
    zero = np.flatnonzero(norms[:, 0] < 1e-12)
    if zero.size:
        raise UserError(f"{name} has {zero.size} all-zero row(s) (first: {int(zero[0])}) that cannot be normalised; drop those pairs")
    return arr / norms


@dataclass
class SaeFit:
    """One trained SAE: its unit-norm dictionary ``[c, d]`` and codes ``[rows, c]`` on the rows it
    was evaluated on (images first, then texts)."""

    kind: str
    level: float
    seed: int
    dictionary: np.ndarray
    codes: np.ndarray
    reconstruction: np.ndarray
    initial: np.ndarray | None = None  # the untrained starting dictionary [c, d] (the stability baseline)


def train_sae(x: torch.Tensor, kind: str, level: float, n_concepts: int, settings: SaeSettings,
              seed: int) -> torch.nn.Module:
    """Train one SAE of ``kind`` at sparsity ``level`` on rows ``x`` [rows, d]; deterministic given
    ``seed`` (the global torch RNG is left as it was)."""
    ocs = import_overcomplete_sae()
    dim = x.shape[1]
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if kind == "topk":
            model = ocs.TopKSAE(dim, n_concepts, top_k=int(level))
        else:
            model = ocs.SAE(dim, n_concepts)  # linear encoder + ReLU
        _init_from_data(model, x, seed)
        loader = _ShuffledBatches(x, min(settings.batch_size, x.shape[0]), seed)
        epochs = -(-settings.steps // len(loader))
        total = epochs * len(loader)
        optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
        scheduler = ocs.CosineScheduler(optimizer, settings.lr, settings.lr * settings.final_lr_fraction,
                                        total_iters=total, warmup_iters=int(settings.warmup_fraction * total))
        for group in optimizer.param_groups:
            group["lr"] = float(scheduler[0])
        l1 = float(level) if kind == "relu_l1" else 0.0

        def criterion(batch, x_hat, pre_codes, codes, dictionary):
            loss = (batch - x_hat).square().sum(dim=-1).mean()
            return loss + l1 * codes.abs().sum(dim=-1).mean() if l1 else loss

        ocs.train_sae(model, loader, criterion, optimizer, scheduler=scheduler, nb_epochs=epochs,
                      clip_grad=settings.clip_grad, monitoring=0)
    model.eval()  # fuses the normalised dictionary
    return model


class _ShuffledBatches:
    """Row batches of ``x`` in a fresh seeded order each epoch (a DataLoader without the per-row
    indexing cost, which dominated these small steps)."""

    def __init__(self, x: torch.Tensor, batch_size: int, seed: int) -> None:
        self.x, self.batch_size = x, batch_size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return -(-self.x.shape[0] // self.batch_size)

    def __iter__(self):
        order = torch.randperm(self.x.shape[0], generator=self.generator)
        for start in range(0, len(order), self.batch_size):
            yield self.x[order[start:start + self.batch_size]]


@torch.no_grad()
def initial_rows(x: torch.Tensor, n_concepts: int, seed: int) -> torch.Tensor:
    """The unit-norm starting dictionary ``[c, d]`` of a run with ``seed`` on ``x``: jittered
    training rows, drawn from the seed's own generator."""
    g = torch.Generator().manual_seed(seed)
    n, dim = x.shape
    c = n_concepts
    idx = torch.randperm(n, generator=g)[:c] if c <= n else torch.randint(n, (c,), generator=g)
    init = x[idx] + 0.01 / dim**0.5 * torch.randn(c, dim, generator=g)
    return init / init.norm(dim=1, keepdim=True)


@torch.no_grad()
def _init_from_data(model: torch.nn.Module, x: torch.Tensor, seed: int) -> None:
    """Start every concept at a (jittered) training row, decoder and encoder alike.

    With overcomplete's default Xavier init, TopK leaves a third to a half of the concepts dead
    on small data and recovers planted directions poorly; data init with the encoder set to the
    decoder's transpose (as Gao et al. 2024 tie them at init) keeps nearly all concepts alive.
    """
    init = initial_rows(x, model.nb_concepts, seed)
    model.dictionary._weights.copy_(init)
    linear = model.encoder.final_block[0]  # overcomplete's "linear" encoder: Linear -> Identity -> ReLU
    linear.weight.copy_(init)
    linear.bias.zero_()


@torch.no_grad()
def encode(model: torch.nn.Module, x: torch.Tensor, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``[rows, c]`` and reconstructions ``[rows, d]`` of ``x`` under a trained SAE."""
    codes, recon = [], []
    for start in range(0, x.shape[0], chunk):
        _, z, x_hat = model(x[start:start + chunk])
        codes.append(z.numpy())
        recon.append(x_hat.numpy())
    return np.concatenate(codes).astype(np.float64), np.concatenate(recon).astype(np.float64)


def fit(x_train: torch.Tensor, x_eval: torch.Tensor, kind: str, level: float, settings: SaeSettings,
        seed: int) -> SaeFit:
    """Train on ``x_train`` and evaluate codes on ``x_eval``."""
    n_concepts = settings.concepts_for(x_train.shape[1])
    model = train_sae(x_train, kind, level, n_concepts, settings, seed)
    codes, recon = encode(model, x_eval)
    dictionary = model.get_dictionary().detach().numpy().astype(np.float64)
    initial = initial_rows(x_train, n_concepts, seed).numpy().astype(np.float64)
    return SaeFit(kind, float(level), seed, dictionary, codes, recon, initial)


@dataclass
class SweepRow:
    """Reconstruction vs sparsity for one (kind, level) SAE, measured on all rows (images and
    texts); ``fvu`` is relative to the variance around the mean of all rows."""

    kind: str
    level: float
    l0: float
    fvu: float
    dead_fraction: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def level_name(kind: str, level: float) -> str:
    """Stable text for a sweep level in metric names: ``k8`` or ``l1=0.03``."""
    return f"k{int(level)}" if kind == "topk" else f"l1={level:g}"


@dataclass
class SaeReport:
    """Everything the sae study measured; ``metrics()`` is the flat float view."""

    n_pairs: int
    dim: int
    n_concepts: int
    settings: dict[str, Any]
    reference: tuple[str, float]
    sweep: list[SweepRow]
    stability: list[sm.StabilityRow]
    stability_chance: float
    modality: sm.ModalitySummary
    concept_shares: list[float]  # per concept of the reference run; -1.0 for dead concepts
    concept_frequency: list[float]
    bridges: list[sm.BridgePair] = field(default_factory=list)
    reference_dictionary: np.ndarray | None = field(default=None, repr=False)  # [c, d]; not in to_dict()

    def metrics(self) -> dict[str, float]:
        m: dict[str, float] = {}
        for r in self.sweep:
            name = f"sweep/{r.kind}/{level_name(r.kind, r.level)}"
            m[f"{name}/l0"], m[f"{name}/fvu"], m[f"{name}/dead_fraction"] = r.l0, r.fvu, r.dead_fraction
        ref = next(r for r in self.sweep if (r.kind, r.level) == self.reference)
        m["reference/l0"], m["reference/fvu"] = ref.l0, ref.fvu
        for comparison in ("seed", "data"):
            rows = [r for r in self.stability if r.comparison == comparison]
            for key in ("mean", *sm.FREQUENCY_BUCKETS, "init"):
                m[f"stability/{comparison}/{key}"] = float(np.mean([getattr(r, key) for r in rows]))
        m["stability/chance"] = self.stability_chance
        mod = self.modality
        m.update({"modality/n_alive": float(mod.n_alive), "modality/frac_image_only": mod.frac_image_only,
                  "modality/frac_text_only": mod.frac_text_only, "modality/frac_bimodal": mod.frac_bimodal,
                  "modality/mass_frac_unimodal": mod.mass_frac_unimodal})
        scores = [b.score for b in self.bridges]
        m["bridge/top_score"] = max(scores) if scores else 0.0
        m["bridge/top_mean_score"] = float(np.mean(scores)) if scores else 0.0
        t = self.settings["unimodal_threshold"]
        cross = [b for b in self.bridges if (b.share_i > t and 0 <= b.share_j < 1 - t)]
        m["bridge/top_frac_image_to_text"] = len(cross) / len(self.bridges) if self.bridges else 0.0
        return m

    def to_dict(self) -> dict[str, Any]:
        return {
            "n_pairs": self.n_pairs, "dim": self.dim, "n_concepts": self.n_concepts,
            "settings": self.settings, "reference": {"kind": self.reference[0], "level": self.reference[1]},
            "metrics": self.metrics(),
            "sweep": [r.to_dict() for r in self.sweep],
            "stability": [r.to_dict() for r in self.stability],
            "modality": self.modality.to_dict(),
            "concept_shares": self.concept_shares,
            "concept_frequency": self.concept_frequency,
            "bridges": [b.to_dict() for b in self.bridges],
        }


def run_sae_study(image_emb: Any, text_emb: Any, settings: SaeSettings | None = None) -> SaeReport:
    """Train the SAEs and take every measurement of the study on aligned embeddings ``[N, d]``."""
    settings = settings or SaeSettings()
    img, txt = prepare_embeddings(image_emb, text_emb, center=settings.center)
    n, dim = img.shape
    settings.check(dim)
    x = torch.cat([img, txt])
    x_np = x.numpy().astype(np.float64)

    fits: dict[tuple[str, float], SaeFit] = {}
    sweep = []
    for kind in settings.kinds:
        for level in settings.levels(kind):
            f = fit(x, x, kind, level, settings, settings.seed)
            fits[(kind, float(level))] = f
            freq = sm.firing_frequency(f.codes)
            sweep.append(SweepRow(kind, float(level), sm.mean_l0(f.codes),
                                  sm.fraction_variance_unexplained(x_np, f.reconstruction), float((freq == 0).mean())))

    kind, level = settings.reference()
    reference = (kind, float(level))
    ref = fits[reference]
    runs = [ref] + [fit(x, x, kind, level, settings, settings.seed + s) for s in range(1, settings.n_seeds)]
    stability = []
    for a in range(len(runs)):
        for b in range(a + 1, len(runs)):
            stability.append(sm.stability_row("seed", f"seed{runs[a].seed}", f"seed{runs[b].seed}", runs[a].dictionary, runs[b].dictionary,
                                              sm.firing_frequency(runs[a].codes), sm.firing_frequency(runs[b].codes), runs[a].initial, runs[b].initial))
    perm = np.random.default_rng(settings.seed).permutation(n)
    halves = []
    for part in (perm[: n // 2], perm[n // 2:]):
        idx = torch.from_numpy(np.sort(part))
        halves.append(fit(torch.cat([img[idx], txt[idx]]), x, kind, level, settings, settings.seed))
    stability.append(sm.stability_row("data", "half_a", "half_b", halves[0].dictionary, halves[1].dictionary,
                                      sm.firing_frequency(halves[0].codes), sm.firing_frequency(halves[1].codes),
                                      halves[0].initial, halves[1].initial))

    codes_img, codes_txt = ref.codes[:n], ref.codes[n:]
    shares = sm.modality_shares(codes_img, codes_txt)
    modality = sm.modality_summary(shares, ref.codes.sum(axis=0), settings.unimodal_threshold)
    matrices = sm.bridge_matrices(codes_img, codes_txt, ref.dictionary)
    bridges = sm.top_bridges(matrices, shares, settings.top_bridges, settings.bridge_include_self)
    return SaeReport(
        n_pairs=n, dim=dim, n_concepts=settings.concepts_for(dim), settings=settings.to_dict(),
        reference=reference, sweep=sweep, stability=stability,
        stability_chance=sm.random_dictionary_stability(ref.dictionary, settings.seed),
        modality=modality, concept_shares=[float(s) for s in np.nan_to_num(shares, nan=-1.0)],
        concept_frequency=[float(v) for v in sm.firing_frequency(ref.codes)], bridges=bridges,
        reference_dictionary=ref.dictionary,
    )


def with_overrides(settings: SaeSettings, **changes: Any) -> SaeSettings:
    """A copy of ``settings`` with ``changes`` (unknown names raise UserError)."""
    unknown = sorted(set(changes) - set(asdict(settings)))
    if unknown:
        raise UserError(f"unknown sae setting(s) {unknown}; known: {sorted(asdict(settings))}")
    return replace(settings, **changes)
