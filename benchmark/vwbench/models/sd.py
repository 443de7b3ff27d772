"""Stable Diffusion (diffusers) behind the :class:`ConceptModel` interface: the generation family.

Loss: the denoising objective of the training scheduler's prediction type (SD 2.1 predicts v) on
VAE latents of the concept's training images, conditioned on "a photo of <word>".
Evaluation: generate images from that prompt with DDIM and classifier-free guidance, and let the
judge (a zero-shot classifier) label them among the dataset's concept names.

The text encoder is transformers' ``CLIPTextModel``. It takes no ``inputs_embeds``, so the adapter
runs its parts itself: token embeddings with the word vectors spliced in, position embeddings,
the encoder under a causal mask, the final layer norm. The UNet is conditioned on the whole
sequence, exactly as ``StableDiffusionPipeline`` conditions it on ``text_encoder(ids)[0]``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import numpy as np
import torch
from PIL import Image

from vwbench.compat.torchvision_ops import ensure_torchvision_importable

ensure_torchvision_importable()

from diffusers import AutoencoderKL, DDIMScheduler, DDPMScheduler, UNet2DConditionModel  # noqa: E402
from diffusers.utils import is_accelerate_available  # noqa: E402
from transformers import CLIPTextModel, CLIPTokenizer  # noqa: E402
from vwbench.compat.causal_mask import run_causal_text_tower  # noqa: E402
from vwbench.compat.quiet_loading import no_weight_loading_bar  # noqa: E402

from vwbench.data.base import Example  # noqa: E402
from vwbench.errors import CheckpointNotFound  # noqa: E402
from vwbench.models.base import (  # noqa: E402
    PROMPT_TEMPLATE,
    ConceptModel,
    EvalContext,
    TrainingData,
    Generators,
    Vocabulary,
    per_word_generators,
    sample_from_pool,
)
from vwbench.models.words import (  # noqa: E402
    SpecialIds,
    WordPrompt,
    build_text_prompts,
    build_word_prompt,
    pool_at,
    splice,
)
from vwbench.predictions import LabelPredictions, Predictions  # noqa: E402

T = TypeVar("T")
DEFAULT_GUIDANCE_SCALE = 7.5
COMPONENTS = ("tokenizer", "text_encoder", "unet", "vae", "scheduler")


@dataclass
class SDPrepared:
    """VAE latents of every training image, and which of them belong to each concept.

    ``latents`` are ``latent_dist.mean`` scaled for the UNet (not a sample of the latent
    distribution): the cache is computed once, so a fixed sample would freeze one arbitrary draw,
    whereas the mean is the deterministic centre of it (diffusers' training scripts draw a fresh
    sample per step instead; SD's VAE posterior is narrow next to the latents' spread).
    """

    latents: torch.Tensor  # [N, C, h, w], float32, on the model's device
    concept_rows: list[torch.Tensor]  # per concept index: long indices into ``latents`` (cpu)
    concepts: list[str]


class StableDiffusionAdapter(ConceptModel):
    """A diffusers Stable Diffusion checkpoint (text encoder, UNet, VAE, scheduler), frozen."""

    family = "sd"
    kind = "generation"
    step_modules = ("unet",)  # the text encoder runs through its submodules (run_text_encoder), not its forward
    # On a CPU a training pass carries at most this many latent pixels (64 latents of mini-sd's
    # 16x16, i.e. 8 words of 8 images): the same gradients, bit for bit, as one pass of every
    # word, but in passes of 8 the 72 words of mini-sd take a third of the memory of one pass
    # and, on one thread, train 1.2-1.3x faster per word-step (on two about as fast; CHANGELOG).
    cpu_pass_latent_pixels: ClassVar[int] = 64 * 16 * 16

    def __init__(
        self,
        tokenizer: CLIPTokenizer,
        text_encoder: CLIPTextModel,
        unet: UNet2DConditionModel,
        vae: AutoencoderKL,
        noise_scheduler: DDPMScheduler,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        self.device = torch.device(device)
        self.dtype = dtype
        self.tokenizer = tokenizer
        self.text_encoder = _freeze(text_encoder, self.device, dtype)
        self.unet = _freeze(unet, self.device, dtype)
        self.vae = _freeze(vae, self.device, dtype)
        self.noise_scheduler = noise_scheduler
        # transformers 5 flattened CLIPTextModel (no ``.text_model``); 4.x checkpoints nest it.
        self._text = getattr(text_encoder, "text_model", text_encoder)
        self.special = SpecialIds(
            bos=int(tokenizer.bos_token_id),
            eos=int(tokenizer.eos_token_id),
            pad=int(tokenizer.pad_token_id),
            context_length=min(
                int(tokenizer.model_max_length), int(self._text.config.max_position_embeddings)
            ),
        )
        self._word_prompts: dict[int, WordPrompt] = {}

    # ------------------------------------------------------------------ loading

    @classmethod
    def from_pretrained(
        cls, path: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> StableDiffusionAdapter:
        """Load a diffusers-layout folder (``model_index.json`` with ``tokenizer/``,
        ``text_encoder/``, ``unet/``, ``vae/``, ``scheduler/``).

        The noise schedule for training is a ``DDPMScheduler`` built from the saved scheduler
        config, whatever sampler class was saved (as diffusers' training scripts do).
        """
        path = Path(path)
        missing = [c for c in ("model_index.json", *COMPONENTS) if not (path / c).exists()]
        if missing:
            raise CheckpointNotFound(
                f"{path} is not a diffusers Stable Diffusion folder: missing {', '.join(missing)}"
            )
        tokenizer = CLIPTokenizer.from_pretrained(str(path / "tokenizer"))
        with no_weight_loading_bar():
            text_encoder = CLIPTextModel.from_pretrained(str(path / "text_encoder"), dtype=dtype)
        # diffusers' default, low_cpu_mem_usage, needs accelerate; without it diffusers falls back
        # with a multi-line warning on every load, so the fallback is asked for directly.
        low_memory = is_accelerate_available()
        unet = UNet2DConditionModel.from_pretrained(str(path / "unet"), torch_dtype=dtype, low_cpu_mem_usage=low_memory)
        vae = AutoencoderKL.from_pretrained(str(path / "vae"), torch_dtype=dtype, low_cpu_mem_usage=low_memory)
        noise_scheduler = DDPMScheduler.from_pretrained(str(path / "scheduler"))
        return cls(tokenizer, text_encoder, unet, vae, noise_scheduler, device=device, dtype=dtype)

    # ------------------------------------------------------------------ vocabulary

    @property
    def embedding_dim(self) -> int:
        return int(self._token_embedding.embedding_dim)

    @property
    def prediction_type(self) -> str:
        return str(self.noise_scheduler.config.prediction_type)

    @property
    def vae_scale_factor(self) -> int:
        return 2 ** (len(self.vae.config.block_out_channels) - 1)

    @property
    def image_size(self) -> int:
        """Side of the square images the UNet was trained on (768 for SD 2.1)."""
        return int(self.unet.config.sample_size) * self.vae_scale_factor

    @property
    def _token_embedding(self) -> torch.nn.Embedding:
        return self._text.embeddings.token_embedding

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False).input_ids)

    def vocabulary(self) -> Vocabulary:
        """Rows of the token-embedding table by BPE token string, without the start and end
        tokens. Only those two are CLIP's special tokens: SD 2.1's tokenizer also marks its pad
        token ``"!"`` as special, but that is an ordinary vocabulary entry other models share."""
        table = self._token_embedding.weight
        special = {self.tokenizer.bos_token, self.tokenizer.eos_token}
        pairs = sorted(
            (i, t) for t, i in self.tokenizer.get_vocab().items() if t not in special and i < table.shape[0]
        )
        ids = torch.tensor([i for i, _ in pairs], dtype=torch.long, device=table.device)
        matrix = table.detach()[ids].to(device="cpu", dtype=torch.float32)
        return Vocabulary([t for _, t in pairs], matrix)

    def token_vectors(self, words: Sequence[str]) -> torch.Tensor:
        """Input embeddings ``[len(words), dim]`` (float32, cpu) of single-token words."""
        ids = []
        for word in words:
            word_ids = self._encode(word)
            if len(word_ids) != 1:
                raise ValueError(
                    f"word {word!r} is not a single token of the SD tokenizer (it is {len(word_ids)} tokens)"
                )
            ids.append(word_ids[0])
        index = torch.tensor(ids, dtype=torch.long, device=self.device)
        return self._token_embedding.weight.detach()[index].to(device="cpu", dtype=torch.float32)

    # ------------------------------------------------------------------ text encoding

    def word_prompt(self, n_vectors: int) -> WordPrompt:
        """The token ids of "a photo of <word>" with ``n_vectors`` word slots (cached)."""
        if n_vectors not in self._word_prompts:
            self._word_prompts[n_vectors] = build_word_prompt(
                self._encode, self.special, n_vectors, PROMPT_TEMPLATE
            )
        return self._word_prompts[n_vectors]

    def run_text_encoder(self, inputs_embeds: torch.Tensor) -> torch.Tensor:
        """Text encoder on token embeddings ``[B, L, d]`` -> final hidden states ``[B, L, d]``
        (``CLIPTextModel.forward`` after its token lookup; see :func:`run_causal_text_tower`)."""
        return run_causal_text_tower(self._text, inputs_embeds)

    def encode_word_states(self, vectors: torch.Tensor) -> tuple[torch.Tensor, int]:
        """Encoder states ``[W, L, d]`` (model dtype) of "a photo of <word>" for ``vectors[W, n, d]``,
        and the end-of-text position (the same for every word)."""
        prompt = self.word_prompt(int(vectors.shape[1]))
        ids = prompt.input_ids.to(self.device).unsqueeze(0).expand(vectors.shape[0], -1)
        positions = prompt.word_positions.to(self.device)
        embeds = splice(self._token_embedding(ids), positions, vectors.to(self.device))
        return self.run_text_encoder(embeds), prompt.eos_position

    def encode_text_states(self, texts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """Encoder states ``[N, L, d]`` of ordinary prompts, padded as the SD pipeline pads them,
        and their end-of-text positions ``[N]``."""
        ids, eos_positions = build_text_prompts(self._encode, self.special, texts)
        return self.run_text_encoder(self._token_embedding(ids.to(self.device))), eos_positions

    def encode_words(self, vectors: torch.Tensor) -> torch.Tensor:
        """End-of-text state ``[W, d]`` (float32) of "a photo of <word>", pooled at the known
        end-of-text position, never at ``argmax(input_ids)``."""
        hidden, eos_position = self.encode_word_states(vectors)
        return pool_at(hidden, eos_position).float()

    # ------------------------------------------------------------------ training

    @torch.no_grad()
    def prepare(self, data: TrainingData) -> SDPrepared:
        """VAE-encode every training image once (see :class:`SDPrepared` for the latent choice)."""
        def encode(images: list[Image.Image]) -> list[dict[str, torch.Tensor]]:
            pixels = torch.stack([image_to_tensor(im, self.image_size) for im in images])
            dist = self.vae.encode(pixels.to(self.device, self.dtype)).latent_dist
            return [{"latents": row} for row in self._scale_latents(dist.mean.float())]

        latents = []
        for chunk in _chunks(data.examples, 8):
            rows = self.cached_image_side(f"vae_latents@{self.image_size}", [e.load_image() for e in chunk], encode)
            latents.append(torch.stack([r["latents"] for r in rows]))
        concept_rows = [torch.tensor(data.indices_of(i), dtype=torch.long) for i in range(len(data.concepts))]
        empty = torch.empty(0, *self._latent_shape(), device=self.device)
        return SDPrepared(torch.cat(latents) if latents else empty, concept_rows, list(data.concepts))

    def loss(
        self,
        vectors: torch.Tensor,
        word_concepts: Sequence[int],
        prepared: SDPrepared,
        generators: Generators,
        batch_size: int = 8,
    ) -> torch.Tensor:
        """Denoising loss per word ``[W]`` (float32) on ``batch_size`` latents of its concept.

        Word ``w``'s randomness (which latents, then timesteps, then noise) comes from
        ``generators[w]``, drawn on its device in that order, so a word's batch does not depend on
        the other words. One UNet call covers all ``W * batch_size`` items; item ``i`` is
        conditioned on word ``i // batch_size`` only, so each word's loss depends on its own
        vectors alone.
        """
        n_words = int(vectors.shape[0])
        if len(word_concepts) != n_words:
            raise ValueError(f"{n_words} words but {len(word_concepts)} word concepts")
        num_train_timesteps = int(self.noise_scheduler.config.num_train_timesteps)
        picks, steps, noises = [], [], []
        for concept, generator in zip(word_concepts, per_word_generators(generators, n_words)):
            pool = prepared.concept_rows[concept]
            picks.append(sample_from_pool(pool, batch_size, generator, f"concept {prepared.concepts[concept]!r}"))
            steps.append(torch.randint(0, num_train_timesteps, (batch_size,), generator=generator, device=generator.device))
            shape = (batch_size, *prepared.latents.shape[1:])
            noises.append(torch.randn(shape, generator=generator, device=generator.device))
        rows = torch.cat(picks)
        latents = prepared.latents[rows.to(prepared.latents.device)].to(self.device, torch.float32)
        timesteps = torch.cat(steps).to(self.device)
        noise = torch.cat(noises).to(self.device)
        noisy = self.noise_scheduler.add_noise(latents, noise, timesteps)
        target = self.training_target(latents, noise, timesteps)

        states, _ = self.encode_word_states(vectors)
        states = states.repeat_interleave(batch_size, dim=0)
        pred = self.unet(noisy.to(self.dtype), timesteps, encoder_hidden_states=states, return_dict=False)[0]
        per_item = (pred.float() - target).pow(2).flatten(1).mean(dim=1)
        return per_item.view(n_words, batch_size).mean(dim=1)

    def training_target(
        self, latents: torch.Tensor, noise: torch.Tensor, timesteps: torch.Tensor
    ) -> torch.Tensor:
        """What the UNet predicts under the scheduler's prediction type."""
        kind = self.prediction_type
        if kind == "epsilon":
            return noise
        if kind == "v_prediction":
            return self.noise_scheduler.get_velocity(latents, noise, timesteps)
        if kind == "sample":
            return latents
        raise ValueError(f"unsupported prediction_type {kind!r}")

    # ------------------------------------------------------------------ generation

    def predict(
        self,
        vectors: torch.Tensor,
        word_concepts: Sequence[int],
        heldout: Sequence[Example],
        ctx: EvalContext,
    ) -> list[Predictions]:
        """Generate ``ctx.generations_per_word`` images per word and have ``ctx.judge`` label them
        among ``ctx.concepts``. Held-out images are not used: generation accuracy is judged on
        the generated images alone."""
        if ctx.judge is None:
            raise ValueError("evaluating a generation model needs a judge (EvalContext.judge)")
        if len(word_concepts) != vectors.shape[0]:
            raise ValueError(f"{vectors.shape[0]} words but {len(word_concepts)} word concepts")
        images = self.generate(
            vectors,
            ctx.generations_per_word,
            ctx.inference_steps,
            ctx.seed,
            float(ctx.options.get("guidance_scale", DEFAULT_GUIDANCE_SCALE)),
            batch_size=ctx.batch_size,
            progress=ctx.progress,
        )
        predictions: list[Predictions] = []
        samples = ctx.options.get("samples")  # a dict to collect one generation per concept into
        for concept, word_images in zip(word_concepts, images):
            target = ctx.concepts[concept]
            if samples is not None and word_images:
                samples.setdefault(target, word_images[0])
            labels = list(ctx.judge.classify_images(word_images, ctx.concepts))
            predictions.append(
                LabelPredictions(target=target, predicted=labels, actual=[target] * len(labels))
            )
        return predictions

    @torch.no_grad()
    def generate(
        self,
        vectors: torch.Tensor,
        n_per_word: int,
        steps: int = 50,
        seed: int = 0,
        guidance_scale: float = DEFAULT_GUIDANCE_SCALE,
        *,
        batch_size: int = 8,
        progress: Callable[[int], None] | None = None,
    ) -> list[list[Image.Image]]:
        """``n_per_word`` images of "a photo of <word>" for each word: DDIM with ``steps`` steps
        (deterministic, eta 0) and classifier-free guidance against the empty prompt.

        Image ``j`` of every word starts from the same initial noise (drawn from ``seed``), so a
        word's images do not depend on which other words are generated with it, nor on
        ``batch_size`` (the number of images per UNet batch, before doubling for guidance).
        """
        n_words = int(vectors.shape[0])
        cond, _ = self.encode_word_states(vectors)
        guided = guidance_scale > 1.0
        uncond = self.encode_text_states([""])[0] if guided else None
        noise = self.initial_noise(n_per_word, seed)
        scheduler = DDIMScheduler.from_config(self.noise_scheduler.config)
        scheduler.set_timesteps(steps, device=self.device)

        images: list[list[Image.Image]] = [[] for _ in range(n_words)]
        items = [(w, j) for w in range(n_words) for j in range(n_per_word)]
        for chunk in _chunks(items, max(1, batch_size)):
            words = torch.tensor([w for w, _ in chunk], device=self.device)
            starts = torch.tensor([j for _, j in chunk], device=self.device)
            latents = self._denoise(noise[starts], cond[words], uncond, scheduler, guidance_scale)
            for (w, _), image in zip(chunk, self.decode_latents(latents)):
                images[w].append(image)
            if progress is not None:
                progress(len(chunk))
        return images

    def initial_noise(self, n: int, seed: int) -> torch.Tensor:
        """``[n, C, h, w]`` starting latents, drawn on the cpu so every device gets the same."""
        generator = torch.Generator("cpu").manual_seed(seed)
        return torch.randn((n, *self._latent_shape()), generator=generator).to(self.device)

    def _denoise(
        self,
        latents: torch.Tensor,
        cond: torch.Tensor,
        uncond: torch.Tensor | None,
        scheduler: DDIMScheduler,
        guidance_scale: float,
    ) -> torch.Tensor:
        latents = latents.float() * scheduler.init_noise_sigma
        states = cond if uncond is None else torch.cat([uncond.expand(len(cond), -1, -1), cond])
        for t in scheduler.timesteps:
            model_in = latents if uncond is None else torch.cat([latents, latents])
            model_in = scheduler.scale_model_input(model_in, t)
            out = self.unet(model_in.to(self.dtype), t, encoder_hidden_states=states, return_dict=False)[0]
            out = out.float()
            if uncond is not None:
                out_uncond, out_cond = out.chunk(2)
                out = out_uncond + guidance_scale * (out_cond - out_uncond)
            latents = scheduler.step(out, t, latents, return_dict=False)[0]
        return latents

    @torch.no_grad()
    def decode_latents(self, latents: torch.Tensor) -> list[Image.Image]:
        """VAE-decode UNet-scale latents to RGB images (rounded as diffusers' ``numpy_to_pil``)."""
        pixels = self.vae.decode(self._unscale_latents(latents).to(self.dtype), return_dict=False)[0]
        array = (pixels.float() / 2 + 0.5).clamp(0, 1).permute(0, 2, 3, 1).cpu().numpy()
        return [Image.fromarray(a) for a in (array * 255).round().astype(np.uint8)]

    # ------------------------------------------------------------------ latents

    def cpu_words_per_pass(self, batch_size: int) -> int:
        """Words per pass on a CPU: as many as keep a pass within ``cpu_pass_latent_pixels``
        (at least one)."""
        _, height, width = self._latent_shape()
        return max(1, self.cpu_pass_latent_pixels // (max(1, batch_size) * height * width))

    def _latent_shape(self) -> tuple[int, int, int]:
        side = int(self.unet.config.sample_size)
        return (int(self.unet.config.in_channels), side, side)

    def _scale_latents(self, latents: torch.Tensor) -> torch.Tensor:
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return (latents - shift) * float(self.vae.config.scaling_factor)

    def _unscale_latents(self, latents: torch.Tensor) -> torch.Tensor:
        shift = getattr(self.vae.config, "shift_factor", None) or 0.0
        return latents / float(self.vae.config.scaling_factor) + shift


def image_to_tensor(image: Image.Image, size: int) -> torch.Tensor:
    """Resize the short side to ``size`` (bicubic), center-crop to a square, scale to [-1, 1]:
    ``[3, size, size]`` float32."""
    image = image.convert("RGB")
    scale = size / min(image.size)
    width, height = max(size, round(image.width * scale)), max(size, round(image.height * scale))
    image = image.resize((width, height), Image.Resampling.BICUBIC)
    left, top = (width - size) // 2, (height - size) // 2
    image = image.crop((left, top, left + size, top + size))
    array = np.asarray(image, dtype=np.float32) / 127.5 - 1.0
    return torch.from_numpy(array).permute(2, 0, 1).contiguous()


def _freeze(module: torch.nn.Module, device: torch.device, dtype: torch.dtype) -> torch.nn.Module:
    module.to(device=device)
    # Cast only when needed: diffusers warns on (and may keep fp32 modules through) dtype casts of
    # models that from_pretrained already loaded in ``dtype``.
    if any(p.dtype != dtype for p in module.parameters() if p.is_floating_point()):
        module.to(dtype=dtype)
    module.requires_grad_(False)
    return module.eval()


def _chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
