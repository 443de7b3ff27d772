"""The reference loops ``vwbench bench`` compares vwbench's training with.

Each trains one word at a time and runs the whole model every step: it loads the step's images,
runs the model's own forward (vision tower and text tower, or for generation the VAE, the text
encoder and the UNet), and computes the task's loss from scratch. The word's random draws (which
images, and for generation the timesteps and noise) come from the word's own generator in the
order the adapter draws them, so each loop computes the same losses as vwbench's batched path and
the two can be checked against each other.

* :func:`naive_clip` — open_clip's ``model(images, text)`` on the word's 8 positive and 8 negative
  images every step; the word's vectors are spliced into the token embeddings by a forward hook.
* :func:`naive_owlv2` — transformers' ``Owlv2ForObjectDetection(input_ids, pixel_values)`` on the
  word's 8 images (one text query per image, the model's input convention), the target region
  chosen from that step's predicted boxes.
* :func:`textual_inversion` — the recipe of diffusers' ``examples/textual_inversion/
  textual_inversion.py``: placeholder tokens added to the tokenizer, their rows in the resized,
  trainable token-embedding matrix, every step VAE-encoding the batch and running the full text
  encoder and UNet, AdamW over the whole embedding matrix, every other row restored after the step.
"""

from __future__ import annotations

import contextlib
import copy
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from vwbench.models.base import PROMPT_TEMPLATE, sample_from_pool
from vwbench.models.words import build_word_prompt, splice


@dataclass
class NaiveRun:
    """Per-word loss curves of a reference loop and the time its steps took (model loading and
    set-up excluded)."""

    losses: list[list[float]]  # [word][step]
    seconds: float
    word_steps: int
    notes: list[str] = field(default_factory=list)
    step_seconds: list[float] = field(default_factory=list)  # each word-step's time

    @property
    def word_steps_per_s(self) -> float:
        return self.word_steps / self.seconds if self.seconds > 0 else float("inf")


@contextlib.contextmanager
def spliced(embedding: torch.nn.Module, positions: torch.Tensor, vectors: torch.Tensor) -> Iterator[None]:
    """While active, ``embedding``'s output has ``vectors [n, d]`` at ``positions`` of every row
    (differentiable in ``vectors``): how a word enters a model whose forward only takes ids."""
    handle = embedding.register_forward_hook(lambda module, args, out: splice(out, positions.to(out.device), vectors))
    try:
        yield
    finally:
        handle.remove()


def _adam(vectors: torch.Tensor, config) -> torch.optim.Optimizer:
    return torch.optim.Adam([vectors], lr=config.lr, betas=config.betas, eps=config.eps)


def _train_one_at_a_time(workload, words: Sequence[int], steps: int, generators, step_loss) -> NaiveRun:
    """Adam on each word alone for ``steps`` steps; ``step_loss(word, vectors, generator)`` runs the
    whole model and returns the loss (a 0-d tensor)."""
    device = workload.model.device
    losses: list[list[float]] = []
    times: list[float] = []
    for w in words:
        vectors = workload.init[w].detach().clone().to(device, torch.float32).requires_grad_(True)
        optimizer = _adam(vectors, workload.config)
        curve = []
        for _ in range(steps):
            start = time.perf_counter()
            optimizer.zero_grad(set_to_none=True)
            loss = step_loss(w, vectors, generators[w])
            loss.backward()
            optimizer.step()
            curve.append(float(loss.detach()))
            _sync(device)
            times.append(time.perf_counter() - start)
        losses.append(curve)
    return NaiveRun(losses, sum(times), len(words) * steps, step_seconds=times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def naive_clip(workload, words: Sequence[int], steps: int, generators) -> NaiveRun:
    """Classification: ``mean cos(negatives) - mean cos(positives)`` from open_clip's full forward."""
    model = workload.model
    labels = [e.concept for e in workload.data.examples]
    everything = torch.arange(len(labels))
    prompt = build_word_prompt(model.encode, model.special, int(workload.init.shape[1]))
    ids = prompt.input_ids.to(model.device)[None]
    batch = workload.config.batch_size
    input_dtype = model.input_dtype

    def step_loss(w: int, vectors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        concept = workload.data.concepts[workload.word_concepts[w]]
        mine = torch.tensor([label == concept for label in labels], dtype=torch.bool)
        pos = sample_from_pool(everything[mine], batch, generator)
        neg = sample_from_pool(everything[~mine], batch, generator)
        picked = [workload.data.examples[i] for i in torch.cat([pos, neg]).tolist()]
        pixels = torch.stack([model.preprocess(e.load_image().convert("RGB")) for e in picked])
        with spliced(model.text.token_embedding, prompt.word_positions, vectors):
            out = model.model(pixels.to(model.device, input_dtype), ids)
        images, text = (out["image_features"], out["text_features"]) if isinstance(out, dict) else out[:2]
        cos = (images.float() @ text.float()[0])  # [2B]
        return cos[batch:].mean() - cos[:batch].mean()

    return _train_one_at_a_time(workload, words, steps, generators, step_loss)


def naive_owlv2(workload, words: Sequence[int], steps: int, generators) -> NaiveRun:
    """Detection: per image ``-cos(target region) + mean cos(other regions)``, the target region
    being the predicted box that best overlaps the concept's ground-truth box, all from
    ``Owlv2ForObjectDetection``'s full forward."""
    from vwbench.models.owlv2 import box_iou, concept_box, cxcywh_to_xyxy, pixels_to_padded

    model = workload.model
    encode = lambda text: list(model.tokenizer.encode(text, add_special_tokens=False))  # noqa: E731
    prompt = build_word_prompt(encode, model.special, int(workload.init.shape[1]))
    batch = workload.config.batch_size
    pools = [torch.tensor(workload.data.indices_of(c), dtype=torch.long) for c in range(len(workload.data.concepts))]

    def step_loss(w: int, vectors: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        pick = sample_from_pool(pools[workload.word_concepts[w]], batch, generator)
        examples = [workload.data.examples[i] for i in pick.tolist()]
        images = [e.load_image() for e in examples]
        pixels = model.pixel_values(images)
        ids = prompt.input_ids.to(model.device)[None].expand(len(images), -1)  # one query per image
        with spliced(model.token_embedding, prompt.word_positions, vectors):
            out = model.model(input_ids=ids, pixel_values=pixels)
        per_image = []
        for i, (example, image) in enumerate(zip(examples, images)):
            gt = pixels_to_padded(concept_box(example), image.width, image.height).reshape(1, 4)
            target = int(box_iou(cxcywh_to_xyxy(out.pred_boxes[i].detach().float()), gt.to(out.pred_boxes.device))[:, 0].argmax())
            cos = out.class_embeds[i].float() @ out.text_embeds[i, 0].float()  # [P]; both unit (OWLv2's heads)
            others = torch.cat([cos[:target], cos[target + 1 :]])
            per_image.append((others.mean() if others.numel() else cos.new_zeros(())) - cos[target])
        return torch.stack(per_image).mean()

    return _train_one_at_a_time(workload, words, steps, generators, step_loss)


def textual_inversion(workload, words: Sequence[int], steps: int, generators) -> NaiveRun:
    """Generation: diffusers' textual-inversion training recipe, one word after another.

    Each word starts as the script starts a run: its placeholder rows set to the init vectors,
    every other row of the (resized) embedding matrix at its original value, a fresh AdamW over
    the whole matrix (weight decay 0, so that it is the Adam vwbench uses). The latent is the VAE
    posterior's mean (the script draws a sample) so that the losses equal vwbench's."""
    from vwbench.models.sd import image_to_tensor

    model = workload.model
    n_vectors = int(workload.init.shape[1])
    tokenizer = copy.deepcopy(model.tokenizer)
    placeholders = [f"<vwbench-word-{i}>" for i in range(n_vectors)]
    if tokenizer.add_tokens(placeholders) != n_vectors:
        raise RuntimeError("the tokenizer already holds the placeholder tokens")
    placeholder_ids = tokenizer.convert_tokens_to_ids(placeholders)
    text_encoder = model.text_encoder  # this process owns the model: resizing it in place is fine
    text_encoder.resize_token_embeddings(len(tokenizer))
    if model.dtype != torch.float32:
        text_encoder.float()  # the script keeps the trained text encoder in fp32 under mixed precision
    embedding = text_encoder.get_input_embeddings()
    embedding.weight.requires_grad_(True)
    text_encoder.train()  # as the script (CLIP's dropouts are 0, so this changes no number)
    original = embedding.weight.detach().clone()
    keep = torch.ones(len(tokenizer), dtype=torch.bool)
    keep[min(placeholder_ids) : max(placeholder_ids) + 1] = False
    length = model.special.context_length
    input_ids = tokenizer(
        PROMPT_TEMPLATE.format(" ".join(placeholders)), padding="max_length", truncation=True, max_length=length, return_tensors="pt"
    ).input_ids.to(model.device)
    _check_prompt(input_ids[0].cpu(), placeholder_ids, model.word_prompt(n_vectors))
    batch = workload.config.batch_size
    scheduler = model.noise_scheduler
    pools = [torch.tensor(workload.data.indices_of(c), dtype=torch.long) for c in range(len(workload.data.concepts))]
    scale = float(model.vae.config.scaling_factor)
    shift = getattr(model.vae.config, "shift_factor", None) or 0.0
    autocast = torch.autocast(model.device.type, dtype=model.dtype) if model.dtype != torch.float32 else contextlib.nullcontext()
    losses: list[list[float]] = []
    times: list[float] = []
    for w in words:
        with torch.no_grad():
            embedding.weight.copy_(original)
            embedding.weight[placeholder_ids] = workload.init[w].to(embedding.weight)
        optimizer = torch.optim.AdamW(
            embedding.parameters(), lr=workload.config.lr, betas=workload.config.betas, eps=workload.config.eps, weight_decay=0.0
        )
        generator = generators[w]
        curve = []
        for _ in range(steps):
            start = time.perf_counter()
            pick = sample_from_pool(pools[workload.word_concepts[w]], batch, generator)
            pixels = torch.stack([image_to_tensor(workload.data.examples[i].load_image(), model.image_size) for i in pick.tolist()])
            with torch.no_grad():
                latents = model.vae.encode(pixels.to(model.device, model.dtype)).latent_dist.mean
            latents = (latents.float() - shift) * scale
            timesteps = torch.randint(0, int(scheduler.config.num_train_timesteps), (batch,), generator=generator, device=generator.device)
            noise = torch.randn(latents.shape, generator=generator, device=generator.device)
            timesteps, noise = timesteps.to(model.device), noise.to(model.device)
            noisy = scheduler.add_noise(latents, noise, timesteps)
            with autocast:
                hidden = text_encoder(input_ids.expand(batch, -1))[0].to(model.dtype)
            pred = model.unet(noisy.to(model.dtype), timesteps, hidden).sample
            target = model.training_target(latents, noise, timesteps)
            loss = F.mse_loss(pred.float(), target.float(), reduction="mean")
            loss.backward()
            optimizer.step()
            optimizer.zero_grad()
            with torch.no_grad():
                embedding.weight[keep] = original[keep]
            curve.append(float(loss.detach()))
            _sync(model.device)
            times.append(time.perf_counter() - start)
        losses.append(curve)
    return NaiveRun(losses, sum(times), len(words) * steps, notes=[f"placeholder tokens {placeholders}"], step_seconds=times)


def _check_prompt(ids: torch.Tensor, placeholder_ids: list[int], prompt) -> None:
    """The script's tokenized prompt must be vwbench's prompt with the placeholder ids at the word
    slots; anything else would make the two loss curves differ for reasons other than speed."""
    expected = prompt.input_ids.clone()
    expected[prompt.word_positions] = torch.tensor(placeholder_ids)
    if ids.shape != expected.shape or not torch.equal(ids, expected):
        raise RuntimeError(f"textual-inversion prompt ids {ids.tolist()} differ from vwbench's {expected.tolist()}")


NAIVE_LOOPS = {"clip": naive_clip, "owlv2": naive_owlv2, "sd": textual_inversion}
"""Model family -> its reference loop."""
