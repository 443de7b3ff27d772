"""Pins from a mutation round on ``vwbench.studies``: behaviour the other study tests left free
(settings validation bounds, input checks, the encoders' pooling and text features, the align,
probe and sae reports' bookkeeping, the families' intervals and captions, the runner's helpers)."""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
from PIL import Image

from tests.studies.test_align_arithmetic import Unchanged
from tests.studies.test_study_tasks import study_tasks  # noqa: F401  (fixture: the tiny tasks plus tiny study files)
from vwbench.errors import UserError
from vwbench.studies import encoders as enc
from vwbench.studies.align import AlignSettings, FeatureTable, run_alignment


# ---- align ---------------------------------------------------------------------------------------


def test_align_prompt_needs_exactly_one_slot_and_l2_may_be_zero() -> None:
    """Two ``{}`` in the prompt are refused like none; ``probe_l2 = 0`` (no penalty) is allowed."""
    for prompt in ("a photo", "{} and {}"):
        with pytest.raises(ValueError, match="exactly one"):
            AlignSettings(prompt=prompt)
    assert AlignSettings(probe_l2=0.0).probe_l2 == 0.0


# ---- encoders (fake adapters: the pooling and text functions only call adapter methods) ----------


class FakeDetector:
    """An OWLv2-like adapter: ``pixel_values`` keeps each image's red value; ``image_embedder``
    returns a 2x2 grid ``[[r, r+1], [r+2, r+3]]`` of 1-wide region features (mean ``r + 1.5``)."""

    def __init__(self) -> None:
        self.batches: list[int] = []
        self.model = types.SimpleNamespace(image_embedder=self._embed)

    def pixel_values(self, images: list[Image.Image]) -> torch.Tensor:
        self.batches.append(len(images))
        return torch.tensor([float(im.getpixel((0, 0))[0]) for im in images])

    @staticmethod
    def _embed(pixel_values: torch.Tensor):
        grid = pixel_values[:, None, None, None] + torch.tensor([[0.0, 1.0], [2.0, 3.0]])[None, :, :, None]
        return grid, None


class FakeClip:
    """A CLIP-like adapter whose text embeddings are not unit-norm."""

    def encode_images(self, images):
        return torch.ones(len(images), 2, dtype=torch.float64)

    def encode_texts(self, texts):
        return torch.tensor([[3.0, 4.0]] * len(texts))


def test_mean_regions_averages_the_grid_in_batches_and_keeps_every_image() -> None:
    adapter = FakeDetector()
    images = [Image.new("RGB", (4, 4), (i, 0, 0)) for i in range(enc.IMAGE_BATCH + 5)]
    features = enc.POOLINGS["mean-regions"](adapter)(images)
    assert adapter.batches == [enc.IMAGE_BATCH, 5]
    assert features.shape == (enc.IMAGE_BATCH + 5, 1)
    assert features[:, 0].tolist() == [i + 1.5 for i in range(enc.IMAGE_BATCH + 5)]


def test_text_features_are_unit_norm_and_need_a_joint_image_text_space() -> None:
    texts = enc._texts(FakeClip())
    assert torch.allclose(texts(["a", "b"]), torch.tensor([[0.6, 0.8], [0.6, 0.8]]))
    only_texts = types.SimpleNamespace(encode_texts=FakeClip().encode_texts)  # no image embedding
    assert enc._texts(only_texts) is None
    assert enc._texts(FakeDetector()) is None
    with pytest.raises(UserError, match="no image embedding"):
        enc.POOLINGS["image-embedding"](FakeDetector())
    assert enc.POOLINGS["image-embedding"](FakeClip())([Image.new("RGB", (4, 4))]).dtype == torch.float32


def _fake_spec(path: str):
    checkpoint = types.SimpleNamespace(model_dump_json=lambda: path)
    return types.SimpleNamespace(family="clip", checkpoint=checkpoint)


@pytest.fixture
def fake_loads(monkeypatch):
    """EncoderCache with checkpoints 'resolved' to their pin and adapters 'loaded' as FakeClip."""
    from pathlib import Path

    import vwbench.runner

    loaded: list[str] = []

    def resolve(pin, weights_dir):
        return enc.ResolvedCheckpoint(path=Path("/ckpt") / pin, name=f"hub/{pin}", revision=f"rev-{pin}", files={"w.bin": "ab" * 32})

    def load(family, path, device, dtype):
        loaded.append(path.name)
        return FakeClip()

    monkeypatch.setattr(enc, "resolve_checkpoint", lambda checkpoint, weights_dir: resolve(checkpoint.model_dump_json(), weights_dir))
    monkeypatch.setattr(vwbench.runner, "load_adapter", load)
    monkeypatch.setattr(enc, "adapter_class", lambda family: FakeClip)  # the family check, without importing open_clip
    return loaded


def test_encoder_cache_loads_each_checkpoint_once_and_reports_its_provenance(fake_loads) -> None:
    cache = enc.EncoderCache(torch.device("cpu"), torch.float32, None)
    a = cache.load("a", _fake_spec("one"), "image-embedding")
    cache.load("a-again", _fake_spec("one"), "image-embedding")
    b = cache.load("b", _fake_spec("two"), "image-embedding")
    assert fake_loads == ["one", "two"]  # another checkpoint of the same family is another adapter
    assert (a.dim, b.checkpoint.name) == (2, "hub/two")
    assert a.provenance("source") == {"role": "source", "family": "clip", "name": "hub/one", "revision": "rev-one", "sha256": {"w.bin": "ab" * 32}}
    with pytest.raises(UserError, match="unknown pooling 'cls'"):
        cache.load("a", _fake_spec("one"), "cls")


def test_align_probe_steps_must_be_at_least_one() -> None:
    with pytest.raises(ValueError, match="probe_steps >= 1"):
        AlignSettings(probe_steps=0)
    assert AlignSettings(probe_steps=1).probe_steps == 1


def _two_image_alignment(**changes):
    eye = torch.eye(2)
    args = dict(
        source_train=FeatureTable(["i1", "i2"], eye.clone()), target_train=FeatureTable(["i1", "i2"], eye.clone()),
        source_test=eye.clone(), target_test=eye.clone(), train_labels=[0, 1], test_labels=[0, 1],
        class_text=torch.tensor([[1.0, 0.0], [0.0, 1.0], [-1.0, -1.0]]), classes=["a", "b", "c"],
    )
    args.update(changes)
    return run_alignment(Unchanged(), **args)


def test_align_per_class_leaves_out_classes_without_held_out_images() -> None:
    r = _two_image_alignment()
    assert r.zero_shot_acc_mapped == r.zero_shot_acc_target == 1.0
    assert r.per_class("mapped") == {"a": [1], "b": [1]}  # no "c": [] (a class with no test image has no accuracy)


def test_align_refuses_labels_that_do_not_match_the_features() -> None:
    with pytest.raises(ValueError, match="training labels and source training features differ"):
        _two_image_alignment(train_labels=[0, 1, 1])
    with pytest.raises(ValueError, match="held-out source features, target features and labels differ"):
        _two_image_alignment(test_labels=[0])


class NanMap(Unchanged):
    name = "nan-map"

    def map(self, x: torch.Tensor) -> torch.Tensor:
        return torch.full_like(x, float("nan"))


def test_align_refuses_a_map_with_non_finite_output() -> None:
    eye = torch.eye(2)
    with pytest.raises(ValueError, match="nan-map produced non-finite mapped features"):
        run_alignment(NanMap(), FeatureTable(["i1", "i2"], eye), FeatureTable(["i1", "i2"], eye), eye, eye, [0, 1], [0, 1], eye, ["a", "b"])


# ---- families ------------------------------------------------------------------------------------


def test_bernoulli_interval_is_the_t_interval_of_the_0_1_vector_clipped_to_0_1() -> None:
    from vwbench.metrics.summary import t_interval
    from vwbench.studies.families import bernoulli_t_interval

    assert bernoulli_t_interval(0.6, 10) == pytest.approx(t_interval([1] * 6 + [0] * 4))
    assert bernoulli_t_interval(0.6, 10) == pytest.approx((0.6 - 0.36940, 0.6 + 0.36940), abs=1e-4)
    low, high = t_interval([1] * 9 + [0])
    assert high > 1.0 and bernoulli_t_interval(0.9, 10) == pytest.approx((low, 1.0))
    assert bernoulli_t_interval(0.1, 10) == pytest.approx((0.0, 1.0 - low))
    assert bernoulli_t_interval(1.0, 1) == (1.0, 1.0)  # one image: no spread to estimate


def test_sae_captions_name_objects_largest_first_with_articles() -> None:
    from vwbench.data.base import Annotation, Example
    from vwbench.studies.families import caption

    boxes = [Annotation((0, 0, 2, 2), "ring"), Annotation((0, 0, 9, 9), "star"), Annotation((0, 0, 5, 5), "octagon"), Annotation((0, 0, 8, 8), "star")]
    example = Example("img", 10, 10, boxes, loader=lambda: Image.new("RGB", (10, 10)))
    assert caption(example, 3) == "a photo of a star, an octagon and a ring"
    assert caption(example, 2) == "a photo of a star and an octagon"
    assert caption(example, 1) == "a photo of a star"


def test_probe_study_settings_take_the_tasks_test_fraction_and_embed_batch() -> None:
    from vwbench.studies.families import ProbeStudy

    settings = ProbeStudy().settings({"test_fraction": 0.5, "embed_batch_size": 8, "hidden": 16})
    assert (settings["test_fraction"], settings["embed_batch_size"], settings["hidden"]) == (0.5, 8, 16)
    assert ProbeStudy().settings({})["test_fraction"] == 0.25


# ---- runner --------------------------------------------------------------------------------------


def test_study_result_path_and_tables_in_json() -> None:
    from pathlib import Path

    from vwbench.studies.runner import _columns, _finite, result_path

    spec = types.SimpleNamespace(name="align:owlv2->clip", dataset=types.SimpleNamespace(name="synth-tiny"))
    assert result_path(Path("out"), spec, "ridge", "0123456789abcdef" * 4) == Path("out/results/synth-tiny/studies/align/owlv2-to-clip-ridge-0123456789ab.json")
    nan, inf = float("nan"), float("inf")
    assert _finite({"a": nan, "rows": [{"x": 1.0, "y": inf}], "nested": {"z": -inf, "w": 2}}) == {"a": None, "rows": [{"x": 1.0, "y": None}], "nested": {"z": None, "w": 2}}
    assert _columns([{"transform": "a", "linear": 1.0}, {"transform": "b", "mlp": 0.5, "linear": 0.0}]) == ["transform", "linear", "mlp"]


# ---- probe ---------------------------------------------------------------------------------------


def test_probe_settings_bounds() -> None:
    from vwbench.studies.probe import ProbeSettings

    with pytest.raises(UserError, match=r"dropout must be in \[0, 1\), got 1.0"):
        ProbeSettings(dropout=1.0)
    with pytest.raises(UserError, match="weight_decay must be >= 0, got -0.1"):
        ProbeSettings(weight_decay=-0.1)
    assert ProbeSettings(min_steps=0, dropout=0.0).min_steps == 0  # epochs alone decide the length


def test_probe_features_validate_ids_and_their_consistency() -> None:
    import dataclasses

    from tests.studies.test_probe_arithmetic import features

    f = features([2, 2])  # 4 images x 2 views, transforms t0, t1 in groups g0, g1
    f.validate()
    bad_transform = f.transform_ids.clone()
    bad_transform[0] = 2  # == len(transform_names)
    with pytest.raises(UserError, match="transform ids fall outside the 2 transform names"):
        dataclasses.replace(f, transform_ids=bad_transform).validate()
    bad_class = f.class_ids.clone()
    bad_class[0] = 1  # image 0's first view says class 1, its second class 0
    with pytest.raises(UserError, match="views of one image carry different class ids"):
        dataclasses.replace(f, class_ids=bad_class).validate()
    bad_group = f.group_ids.clone()
    bad_group[0] = 1  # t0 is in g0 everywhere but here
    with pytest.raises(UserError, match="one transformation maps to several groups"):
        dataclasses.replace(f, group_ids=bad_group).validate()


def test_build_probe_features_refuses_a_zero_batch_size() -> None:
    from tests.studies.test_probe import pixel_encoder, shape_images
    from vwbench.studies.probe import build_probe_features

    images, labels = shape_images(per_class=1)
    with pytest.raises(UserError, match="batch_size must be >= 1, got 0"):
        build_probe_features(images, labels, pixel_encoder, batch_size=0)


def test_min_steps_lengthen_training_to_whole_epochs() -> None:
    """``min_steps`` optimizer steps rounded up to whole epochs: 1 epoch + 10 steps of 2 batches
    trains exactly as 5 epochs do."""
    import dataclasses

    from vwbench.studies.probe import ProbeSettings, fit_probe

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(4, 3, generator=g), torch.tensor([0, 1, 0, 1])
    base = ProbeSettings(hidden=4, batch_size=2, lr=1e-2, probe_kind="linear")
    by_steps = fit_probe(x, [y], [2], dataclasses.replace(base, epochs=1, min_steps=10))
    by_epochs = fit_probe(x, [y], [2], dataclasses.replace(base, epochs=5, min_steps=0))
    one_epoch = fit_probe(x, [y], [2], dataclasses.replace(base, epochs=1, min_steps=0))
    for a, b, c in zip(by_steps.net.parameters(), by_epochs.net.parameters(), one_epoch.net.parameters()):
        assert torch.equal(a, b) and not torch.equal(a, c)


# ---- sae -----------------------------------------------------------------------------------------


def test_sae_settings_bounds_are_inclusive_where_documented() -> None:
    from vwbench.registry.schema import MAX_SEED
    from vwbench.studies.sae import SaeSettings

    SaeSettings(n_concepts=4, topk_levels=(1, 4), l1_levels=(1e-9,), unimodal_threshold=0.51).check(8)  # k = c is allowed
    SaeSettings(n_concepts=3, topk_levels=(1, 2, 3)).check(8)
    for changes, match in [
        ({"n_concepts": 2, "topk_levels": (1,)}, "the dictionary has 2 concepts"),
        ({"l1_levels": (0.0, 0.1)}, "positive finite"),
        ({"unimodal_threshold": 0.5}, r"must lie in \(0.5, 1\)"),
        ({"unimodal_threshold": 1.0}, r"must lie in \(0.5, 1\)"),
    ]:
        with pytest.raises(UserError, match=match):
            SaeSettings(**changes).check(8)
    assert SaeSettings(seed=MAX_SEED - 2, n_seeds=3).seed == MAX_SEED - 2  # its runs use MAX_SEED - 2 .. MAX_SEED
    with pytest.raises(UserError, match="pass"):
        SaeSettings(seed=MAX_SEED - 1, n_seeds=3)


def test_sae_reference_is_the_middle_of_the_sorted_sweep() -> None:
    from vwbench.studies.sae import SaeSettings

    assert SaeSettings(topk_levels=(16, 4, 8)).reference() == ("topk", 8)
    assert SaeSettings(reference_kind="relu_l1", l1_levels=(0.3, 0.01, 0.1, 0.03)).reference() == ("relu_l1", 0.1)


def test_sae_takes_exactly_the_minimum_number_of_pairs_and_centres_each_modality() -> None:
    from vwbench.studies.sae import MIN_PAIRS, prepare_embeddings

    rng = np.random.default_rng(0)
    img = rng.standard_normal((MIN_PAIRS, 4)) + np.array([5.0, 0.0, 0.0, 0.0])
    txt = rng.standard_normal((MIN_PAIRS, 4)) - np.array([0.0, 5.0, 0.0, 0.0])
    plain_img, _ = prepare_embeddings(img, txt)
    np.testing.assert_allclose(plain_img.numpy(), img / np.linalg.norm(img, axis=1, keepdims=True), rtol=1e-6)
    centred_img, centred_txt = prepare_embeddings(img, txt, center=True)
    for raw, got in ((img, centred_img), (txt, centred_txt)):
        unit = raw / np.linalg.norm(raw, axis=1, keepdims=True)
        expected = unit - unit.mean(axis=0)
        np.testing.assert_allclose(got.numpy(), expected / np.linalg.norm(expected, axis=1, keepdims=True), rtol=1e-5, atol=1e-6)


def test_sae_steps_are_rounded_up_to_whole_epochs() -> None:
    """32 rows in batches of 16: 3 steps train 2 epochs, exactly as 4 steps do."""
    from vwbench.studies.sae import SaeSettings, fit

    x = torch.from_numpy(np.random.default_rng(0).standard_normal((32, 6)).astype(np.float32))
    x = x / x.norm(dim=1, keepdim=True)

    def dictionary(steps: int) -> np.ndarray:
        return fit(x, x, "topk", 2, SaeSettings(n_concepts=8, batch_size=16, steps=steps), seed=0).dictionary

    np.testing.assert_array_equal(dictionary(3), dictionary(4))
    assert not np.array_equal(dictionary(2), dictionary(4))


def test_sae_report_metrics_average_the_stability_rows() -> None:
    from vwbench.studies import sae_metrics as sm
    from vwbench.studies.sae import SaeReport, SweepRow

    def row(comparison: str, mean: float) -> sm.StabilityRow:
        return sm.StabilityRow(comparison, "a", "b", mean, mean, mean, mean, init=mean / 2)

    bridges = [sm.BridgePair(1, 0, 1, 0.9, 0.9, 1.0, 0.9, 0.99, 0.01), sm.BridgePair(2, 2, 3, 0.3, 0.3, 1.0, 0.3, 0.5, 0.5),
               sm.BridgePair(3, 4, 5, 0.0 + 0.3, 0.3, 1.0, 0.3, 0.99, -1.0)]
    report = SaeReport(
        n_pairs=20, dim=4, n_concepts=8, settings={"unimodal_threshold": 0.95}, reference=("topk", 2.0),
        sweep=[SweepRow("topk", 2.0, 1.5, 0.25, 0.125), SweepRow("relu_l1", 0.03, 3.0, 0.5, 0.0)],
        stability=[row("seed", 0.1), row("seed", 0.2), row("seed", 0.9), row("data", 0.6)], stability_chance=0.05,
        modality=sm.modality_summary(np.array([0.99, 0.5]), np.ones(2)), concept_shares=[0.99, 0.5], concept_frequency=[0.5, 0.5],
        bridges=bridges,
    )
    m = report.metrics()
    assert m["stability/seed/mean"] == pytest.approx(0.4) and m["stability/seed/init"] == pytest.approx(0.2)
    assert m["stability/data/frequent"] == pytest.approx(0.6)
    assert (m["reference/l0"], m["reference/fvu"], m["sweep/relu_l1/l1=0.03/l0"], m["sweep/topk/k2/dead_fraction"]) == (1.5, 0.25, 3.0, 0.125)
    assert m["bridge/top_score"] == pytest.approx(0.9) and m["bridge/top_mean_score"] == pytest.approx(0.5)
    assert m["bridge/top_frac_image_to_text"] == pytest.approx(1 / 3)  # a dead partner (share -1) is not text-only


# ---- runner: a tiny align run --------------------------------------------------------------------


class LogReporter:
    def __init__(self) -> None:
        from vwbench.progress import NullReporter

        self.lines: list[str] = []
        self._null = NullReporter()

    def stage(self, name: str, total: int | None = None):
        return self._null.stage(name, total)

    def log(self, message: str) -> None:
        self.lines.append(message)


def test_a_study_run_keeps_its_seed_and_transfer_and_recomputes_a_result_of_another_key(study_tasks, tmp_path) -> None:  # noqa: F811 (the imported fixture)
    import json

    from vwbench.registry.studies import StudyRegistry
    from vwbench.studies.runner import StudyOptions, run_study

    spec = StudyRegistry.from_dir(study_tasks).get("align:owlv2->clip", "synth-tiny")
    options = StudyOptions(transfer="ridge", seed=7, device="cpu", threads=1, out_dir=tmp_path / "out")
    first = run_study(spec, options)
    assert not first.reused and (first.result.seed, first.result.transfer) == (7, "ridge")  # --transfer beats the task's lstsq
    assert first.path.name.startswith("owlv2-to-clip-ridge-")
    stored = json.loads(first.path.read_text())
    key = stored["study"]["key"]
    stored["study"]["key"] = "0" * len(key)  # the same task, dataset and seed, but another run's key
    first.path.write_text(json.dumps(stored))
    reporter = LogReporter()
    again = run_study(spec, options, reporter)
    assert not again.reused and again.result.study.key == key
    assert any("another run's result" in line for line in reporter.lines)
    assert run_study(spec, options).reused  # and the recomputed one is then reused
    first.path.write_text("{not json")  # a damaged result is computed again, not an error
    damaged = LogReporter()
    redone = run_study(spec, options, damaged)
    assert not redone.reused and redone.result.study.key == key
    assert any(line.startswith("ignoring a damaged result") for line in damaged.lines)


# ---- transforms ----------------------------------------------------------------------------------


def test_shear_pivots_about_the_middle_row() -> None:
    from vwbench.studies.transforms import apply_transform

    ramp = np.tile((np.arange(40) * 6).astype(np.uint8)[None, :, None], (40, 1, 3))
    out = np.asarray(apply_transform("shear", Image.fromarray(ramp))).astype(int)
    assert np.array_equal(out[20], ramp[20].astype(int))  # the middle row stays put
    assert out[0, 10:20, 0].tolist() == ramp[0, 4:14, 0].tolist()  # the top row shows what lies 6 px left (0.3 * 20)
    assert out[39, 10:20, 0].tolist() == [95, 101, 107, 113, 119, 125, 131, 137, 143, 149]  # the bottom row: ~6 px right


def test_motion_blur_averages_so_a_flat_image_stays_flat() -> None:
    from vwbench.studies.transforms import apply_transform

    out = np.asarray(apply_transform("motion_blur", Image.new("RGB", (40, 30), (100, 150, 200))))
    assert np.unique(out.reshape(-1, 3), axis=0).tolist() == [[100, 150, 200]]


def test_repeated_transform_names_are_refused() -> None:
    from vwbench.studies.transforms import TRANSFORMS, check_table

    with pytest.raises(UserError, match="transformation names repeat: hflip"):
        check_table(TRANSFORMS + (TRANSFORMS[1],))
    with pytest.raises(UserError, match="table is empty"):
        check_table(())


def test_the_transformation_table_parameters() -> None:
    """The table defines the study (results are keyed by code version, not by these numbers)."""
    from vwbench.studies.transforms import TRANSFORMS

    assert {t.name: dict(t.params) for t in TRANSFORMS} == {
        "identity": {}, "hflip": {}, "vflip": {}, "rotate90": {"degrees": 90}, "rotate180": {"degrees": 180},
        "rotate15": {"degrees": 15}, "crop_resize": {"keep": 0.6}, "translate": {"dx": 0.2, "dy": 0.1}, "shear": {"shear": 0.3},
        "perspective": {"pull": 0.25}, "grayscale": {}, "hue_shift": {"turn": 0.25}, "saturate": {"factor": 2.5},
        "channel_swap": {"order": "BGR"}, "invert": {}, "brightness_up": {"factor": 1.6}, "brightness_down": {"factor": 0.5},
        "contrast_up": {"factor": 2.0}, "solarize": {"threshold": 128}, "gaussian_blur": {"radius": 0.02}, "box_blur": {"radius": 0.02},
        "motion_blur": {"length": 0.06}, "gaussian_noise": {"sigma": 0.1}, "salt_pepper": {"amount": 0.06}, "jpeg": {"quality": 8},
        "pixelate": {"block": 0.08}, "posterize": {"bits": 2}, "sharpen": {"radius": 0.02, "percent": 250}, "contour": {}, "emboss": {},
        "cartoon": {"bits": 3, "edge_threshold": 40},
    }


# ---- sae_metrics ---------------------------------------------------------------------------------


def test_matching_maximises_signed_cosine() -> None:
    """An anti-aligned pair is the worst partner, not the best (|cos| would pair it)."""
    from vwbench.studies import sae_metrics as sm

    a = np.array([[1.0, 0.0], [0.0, 1.0]])
    b = np.array([[-1.0, 0.1], [0.6, 0.8]])
    matched, partner = sm.match_dictionaries(a, b)
    assert partner.tolist() == [1, 0]
    np.testing.assert_allclose(matched, [0.6, 0.1 / np.sqrt(1.01)])


def test_frequency_terciles_go_from_rare_to_frequent() -> None:
    from vwbench.studies import sae_metrics as sm

    buckets = sm.frequency_buckets(np.array([0.5, 0.0, 0.9, 0.1, 0.3, 0.7]))
    assert {k: v.tolist() for k, v in buckets.items()} == {"rare": [1, 3], "medium": [4, 0], "frequent": [5, 2]}


def test_stability_row_matches_live_concepts_and_their_starting_rows_only() -> None:
    from vwbench.studies import sae_metrics as sm

    e = np.eye(3)
    dict_a = np.array([e[0], [1.0, 1.0, 0.0], e[2]])  # row 1 is dead in run a
    dict_b = np.array([e[0], e[1], [0.0, 0.6, 0.8]])
    init_a = np.array([e[0], -e[2], e[2]])
    init_b = e.copy()
    row = sm.stability_row("seed", "s0", "s1", dict_a, dict_b, np.array([0.5, 0.0, 0.2]), np.full(3, 0.3), init_a, init_b)
    assert (row.alive_a, row.alive_b) == (2, 3)
    assert row.mean == pytest.approx(0.9)  # e0 -> e0 (1.0), e2 -> (0, .6, .8) (0.8)
    assert (row.rare, row.medium) == (pytest.approx(0.8), pytest.approx(1.0)) and np.isnan(row.frequent)
    assert row.init == pytest.approx(1.0)  # the dead row's start (-e2) is left out


def test_bridge_matrices_by_hand() -> None:
    from vwbench.studies import sae_metrics as sm

    zi = np.array([[1.0, 0.0], [3.0, 2.0]])
    zt = np.array([[2.0, 1.0], [0.0, 4.0]])
    m = sm.bridge_matrices(zi, zt, np.array([[1.0, 0.0], [0.6, 0.8]]))
    np.testing.assert_allclose(m["raw"], [[1.0, 6.5], [0.0, 4.0]])  # E over the 2 pairs
    coact = 6.5 / np.sqrt(5.0 * 8.5)  # raw / sqrt(E[z_i^2] E[z_j^2])
    assert m["coactivation"][0, 1] == pytest.approx(coact)
    assert m["coactivation"][1, 1] == pytest.approx(4.0 / np.sqrt(2.0 * 8.5))
    assert m["paper"][0, 1] == pytest.approx(6.5 * 0.6) and m["score"][0, 1] == pytest.approx(coact * 0.6)


def test_sae_relu_l1_loss_is_squared_error_plus_l1_of_each_rows_codes(monkeypatch) -> None:
    """Per row: squared error summed over dimensions plus ``level`` times the codes' L1 norm
    (summed over concepts, so the coefficient does not shrink with the dictionary size)."""
    from vwbench.compat.overcomplete_sae import import_overcomplete_sae
    from vwbench.studies import sae
    from vwbench.studies.sae import SaeSettings, train_sae

    real = import_overcomplete_sae()
    seen = {}

    def capture(model, loader, criterion, optimizer, **kwargs):
        seen["criterion"] = criterion

    monkeypatch.setattr(sae, "import_overcomplete_sae", lambda: types.SimpleNamespace(
        TopKSAE=real.TopKSAE, SAE=real.SAE, CosineScheduler=real.CosineScheduler, train_sae=capture))
    x = torch.nn.functional.normalize(torch.randn(8, 3, generator=torch.Generator().manual_seed(0)), dim=1)
    train_sae(x, "relu_l1", 0.1, 4, SaeSettings(steps=1), seed=0)
    codes = torch.tensor([[1.0, 2.0, 0.0, 0.0], [0.0, 0.0, 0.0, 4.0]])
    loss = seen["criterion"](torch.zeros(2, 3), torch.ones(2, 3), codes, codes, None)
    assert float(loss) == pytest.approx(3.0 + 0.1 * 3.5)
    train_sae(x, "topk", 2, 4, SaeSettings(steps=1), seed=0)
    assert float(seen["criterion"](torch.zeros(2, 3), torch.ones(2, 3), codes, codes, None)) == pytest.approx(3.0)


def test_sae_sweep_dead_fraction_and_the_stability_runs() -> None:
    from vwbench.studies.sae import SaeSettings, run_sae_study

    rng = np.random.default_rng(0)
    img, txt = rng.standard_normal((16, 4)), rng.standard_normal((16, 4))
    settings = SaeSettings(kinds=("topk",), n_concepts=40, topk_levels=(1,), steps=4, batch_size=32, n_seeds=2)
    report = run_sae_study(img, txt, settings)
    (row,) = report.sweep
    dead = float(np.mean(np.array(report.concept_frequency) == 0))
    assert dead >= 0.2  # 32 rows, one concept each: at least 8 of the 40 never fire
    assert row.dead_fraction == pytest.approx(dead)
    assert report.metrics()["sweep/topk/k1/dead_fraction"] == pytest.approx(dead)
    # n_seeds = 2: one pair of seed runs (seed, seed + 1), plus the two data halves
    assert [(r.comparison, r.run_a, r.run_b) for r in report.stability] == [("seed", "seed0", "seed1"), ("data", "half_a", "half_b")]


def test_align_study_headline_interval_is_clipped_to_0_1() -> None:
    """5 of 6 held-out images right: the t interval's upper end (> 1) is reported as 1."""
    from vwbench.data.base import Annotation, Concept, DatasetSplit, Example
    from vwbench.metrics.summary import t_interval
    from vwbench.progress import NullReporter
    from vwbench.results.provenance import StageTimer
    from vwbench.studies.families import AlignStudy, StudyContext

    colour = {"circle": (255, 0, 0), "square": (0, 0, 255)}

    def example(i: str, shape: str, painted: str | None = None) -> Example:
        image = Image.new("RGB", (4, 4), colour[painted or shape])
        return Example(i, 4, 4, [Annotation((0, 0, 4, 4), shape)], loader=lambda: image)

    def embed(images):
        return torch.tensor([[im.getpixel((0, 0))[0] / 255, im.getpixel((0, 0))[2] / 255] for im in images])

    train = [example(f"t{i}", s) for i, s in enumerate(["circle", "square"] * 2)]
    heldout = [example(f"h{i}", s) for i, s in enumerate(["circle", "square"] * 3)]
    heldout[1] = example("h1", "square", painted="circle")  # looks like a circle to both encoders
    split = DatasetSplit("toy", [Concept("circle", "circle"), Concept("square", "square")], train, heldout, manifest=None)
    encoder = types.SimpleNamespace(name="toy", embed_images=embed, embed_texts=lambda texts: torch.tensor([[1.0, 0.0] if "circle" in t else [0.0, 1.0] for t in texts]))
    ctx = StudyContext(
        spec=types.SimpleNamespace(name="align:toy->toy"), split=split, encoders={"source": encoder, "target": encoder},
        settings=AlignStudy().settings({"probe_steps": 5}), reporter=NullReporter(), timer=StageTimer(),
        transfer=types.SimpleNamespace(method=Unchanged(), label="unchanged"),
    )
    outcome = AlignStudy().run(ctx)
    low, high = t_interval([1, 0, 1, 1, 1, 1])
    assert outcome.value == pytest.approx(5 / 6) and high > 1.0
    assert outcome.ci95 == (pytest.approx(low), 1.0)
    assert outcome.per_concept == {"circle": 1.0, "square": pytest.approx(2 / 3)}
    assert [(r["class"], r["mapped"], r["target"], r["n"]) for r in outcome.tables["per_class"]] == [("circle", 1.0, 1.0, 3), ("square", pytest.approx(2 / 3), pytest.approx(2 / 3), 3)]
    assert outcome.method_params["n_train"] == 4 and outcome.method_params["n_test"] == 6


def test_pixelate_averages_each_block() -> None:
    """A 1-pixel checkerboard pixelates to greys (block means), never to its own black and white."""
    from vwbench.studies.transforms import apply_transform

    board = ((np.indices((32, 32)).sum(0) % 2) * 255).astype(np.uint8)
    out = np.asarray(apply_transform("pixelate", Image.fromarray(np.stack([board] * 3, -1))))
    assert set(np.unique(out).tolist()) <= set(range(100, 156))


def test_rotations_interpolate_only_off_the_right_angles() -> None:
    """rotate15 blends neighbouring pixels (bilinear); rotate90 and rotate180 move pixels exactly."""
    from vwbench.studies.transforms import apply_transform

    board = ((np.indices((33, 40)).sum(0) % 2) * 255).astype(np.uint8)
    image = Image.fromarray(np.stack([board] * 3, -1))
    assert len(np.unique(np.asarray(apply_transform("rotate15", image)))) > 100
    for name in ("rotate90", "rotate180"):
        assert np.unique(np.asarray(apply_transform(name, image))).tolist() == [0, 255], name


@pytest.mark.parametrize("value", [0, -1, 2.5, 3.0, True, None, float("nan"), float("inf"), "4"])
def test_sae_top_bridges_must_be_a_positive_integer(value) -> None:
    """Study files already refuse these; a direct ``run_sae_study`` call returned nearly every
    pair (self pairs included) for a negative count."""
    from vwbench.studies.sae import SaeSettings

    with pytest.raises(UserError, match=f"top_bridges {value} must be an integer >= 1"):
        SaeSettings(top_bridges=value).check(64)
    SaeSettings(top_bridges=1).check(64)
