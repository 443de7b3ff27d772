"""Each adapter's training loss recomputed by hand from its definition (PROTOCOL.md, Table 1) on the
tiny models, with the word's own random draws replayed from its generator; and the box
arithmetic behind OWLv2's target region.

- classification: ``mean_neg cos(e_image, e_text) - mean_pos cos(e_image, e_text)`` on
  ``batch_size`` positives, then ``batch_size`` negatives, drawn from the word's generator;
- generation: the denoising MSE against the scheduler's target, on ``x_t = sqrt(a_t) x_0 +
  sqrt(1 - a_t) eps`` with ``t`` uniform over all training timesteps (latents, then timesteps, then
  noise, from the word's generator), computed here from ``alphas_cumprod`` rather than diffusers'
  helpers;
- CLIP evaluation: the trained word replaces its concept's "a photo of {name}" prompt.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tests.models.test_clip import CONCEPTS as CLIP_CONCEPTS
from tests.models.test_clip import adapter, clip_dir, heldout, init_vectors, prepared, train  # noqa: F401  (fixtures)
from tests.models.test_sd import _words, sd_dirs, training_data  # noqa: F401  (fixtures)
from vwbench.data.base import Annotation, Example
from vwbench.models.base import EvalContext, sample_from_pool
from vwbench.models.clip import PROMPT_TEMPLATE
from vwbench.models.owlv2 import box_iou, concept_box, padded_to_pixels, pixels_to_padded, select_target_region
from vwbench.models.sd import StableDiffusionAdapter

# --- classification (CLIP) ---------------------------------------------------------------------


def test_clip_loss_is_mean_negative_minus_mean_positive_cosine(adapter, prepared) -> None:  # noqa: F811
    vectors = init_vectors(adapter, ["red", "blue", "cup"])
    concepts, batch = [0, 2, 1], 3
    generators = [torch.Generator().manual_seed(20 + w) for w in range(3)]
    loss = adapter.loss(vectors, concepts, prepared, [torch.Generator().manual_seed(20 + w) for w in range(3)], batch_size=batch)
    with torch.no_grad():
        text = F.normalize(adapter.encode_words(vectors), dim=-1)
    for w, c in enumerate(concepts):
        pos = sample_from_pool(prepared.positives[c], batch, generators[w])
        neg = sample_from_pool(prepared.negatives[c], batch, generators[w])
        assert set(pos.tolist()) <= set(prepared.positives[c].tolist())
        want = (prepared.features[neg] @ text[w]).mean() - (prepared.features[pos] @ text[w]).mean()
        torch.testing.assert_close(loss[w].detach(), want, rtol=1e-5, atol=1e-6)


def test_clip_word_replaces_its_concepts_prompt_at_evaluation(adapter, heldout) -> None:  # noqa: F811
    g = torch.Generator().manual_seed(5)
    vectors = adapter.token_vectors(["blue", "red", "cup"])[:, None] + 0.5 * torch.randn(3, 1, adapter.embedding_dim, generator=g)
    targets = [0, 1, 2]
    preds = adapter.predict(vectors, targets, heldout, EvalContext(concepts=list(CLIP_CONCEPTS)))
    with torch.no_grad():
        images = adapter.encode_images([e.load_image() for e in heldout])
        names = F.normalize(adapter.encode_texts([PROMPT_TEMPLATE.format(n) for n in CLIP_CONCEPTS]), dim=-1)
        words = F.normalize(adapter.encode_words(vectors), dim=-1)
    changed = 0
    for w, target in enumerate(targets):
        scores = images @ names.T
        zero_shot = scores.argmax(dim=1)
        scores[:, target] = images @ words[w]
        want = [CLIP_CONCEPTS[i] for i in scores.argmax(dim=1).tolist()]
        assert preds[w].predicted == want
        changed += sum(a != CLIP_CONCEPTS[b] for a, b in zip(want, zero_shot.tolist()))
    assert changed > 0  # the fixture does move labels away from the zero-shot ones


# --- generation (SD) ---------------------------------------------------------------------------


def _sd_loss_by_hand(sd: StableDiffusionAdapter, vectors, concepts, prepared, seeds, batch):
    sched = sd.noise_scheduler
    acp = sched.alphas_cumprod.to(torch.float32)
    n_steps = int(sched.config.num_train_timesteps)
    out = []
    for w, c in enumerate(concepts):
        g = torch.Generator().manual_seed(seeds[w])
        rows = sample_from_pool(prepared.concept_rows[c], batch, g)
        t = torch.randint(0, n_steps, (batch,), generator=g)
        eps = torch.randn((batch, *prepared.latents.shape[1:]), generator=g)
        x0 = prepared.latents[rows].float()
        a = acp[t].sqrt().view(-1, 1, 1, 1)
        s = (1 - acp[t]).sqrt().view(-1, 1, 1, 1)
        noisy = a * x0 + s * eps
        target = a * eps - s * x0 if sd.prediction_type == "v_prediction" else eps
        with torch.no_grad():
            states, _ = sd.encode_word_states(vectors[w : w + 1])
            pred = sd.unet(noisy, t, encoder_hidden_states=states.expand(batch, -1, -1), return_dict=False)[0]
        out.append(((pred.float() - target) ** 2).mean())
    return torch.stack(out)


def test_sd_loss_is_the_denoising_mse_for_both_prediction_types(sd_dirs, training_data) -> None:  # noqa: F811
    for kind in ("v_prediction", "epsilon"):
        sd = StableDiffusionAdapter.from_pretrained(sd_dirs[kind])
        assert sd.prediction_type == kind
        prep = sd.prepare(training_data)
        vectors = _words(sd, ["dog", "cat", "cup"])
        concepts, seeds, batch = [0, 1, 0], [3, 4, 5], 4
        with torch.no_grad():
            loss = sd.loss(vectors, concepts, prep, [torch.Generator().manual_seed(s) for s in seeds], batch_size=batch)
        torch.testing.assert_close(loss, _sd_loss_by_hand(sd, vectors, concepts, prep, seeds, batch), rtol=1e-4, atol=1e-6)


# --- OWLv2 box arithmetic ----------------------------------------------------------------------


def test_box_iou_values() -> None:
    a = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 1.0, 1.0]])
    b = torch.tensor([[1.0, 0.0, 3.0, 2.0], [0.0, 0.0, 2.0, 2.0], [5.0, 5.0, 6.0, 6.0]])
    want = torch.tensor([[2 / 6, 1.0, 0.0], [0.0, 0.25, 0.0]])
    torch.testing.assert_close(box_iou(a, b), want)


def test_target_region_is_the_best_overlap_not_the_biggest_one() -> None:
    # a huge box that covers the ground truth (IoU 1/16) and a tight, slightly shifted one
    predicted = torch.tensor([[0.5, 0.5, 1.0, 1.0], [0.27, 0.25, 0.25, 0.25]])  # cxcywh
    gt = torch.tensor([0.125, 0.125, 0.375, 0.375])
    assert select_target_region(predicted, gt) == 1


def test_concept_box_is_the_largest_box_of_the_images_concept() -> None:
    example = Example(
        "x", 100, 100,
        [Annotation((0, 0, 10, 10), "dog"), Annotation((20, 20, 50, 40), "dog"), Annotation((60, 0, 5, 5), "cat")],
        loader=lambda: None,
    )
    assert example.concept == "dog"
    assert concept_box(example).tolist() == [20.0, 20.0, 70.0, 60.0]


def test_padded_frame_round_trip_for_portrait_images() -> None:
    """A portrait image pads on the right: both axes scale by its height."""
    width, height = 30, 60
    pixels = torch.tensor([[3.0, 6.0, 27.0, 54.0]])
    normalized = pixels_to_padded(pixels, width, height)
    torch.testing.assert_close(normalized, pixels / 60.0)
    torch.testing.assert_close(padded_to_pixels(normalized, width, height), pixels)
    # the right padding (x beyond 30 px) is clipped away
    torch.testing.assert_close(padded_to_pixels(torch.tensor([[0.25, 0.5, 0.75, 1.0]]), width, height), torch.tensor([[15.0, 30.0, 30.0, 60.0]]))
