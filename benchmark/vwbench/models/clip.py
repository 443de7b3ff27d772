"""open_clip CLIP behind :class:`ConceptModel`: the classification model and the generation judge.

A checkpoint folder is in the format of open_clip repos on the HF hub (apple/DFN2B-CLIP-ViT-L-14,
timm/vit_large_patch14_clip_224.openai): ``open_clip_config.json`` with ``model_cfg`` and
``preprocess_cfg``, weights in ``open_clip_model.safetensors`` or ``open_clip_pytorch_model.bin``,
and optionally the tokenizer's ``bpe_simple_vocab.txt.gz`` (else open_clip's CLIP vocabulary).

Words are spliced into "a photo of <word>" at the input-embedding level and the text tower is run
from there; the pooled feature is taken at the known end-of-text position, never by open_clip's
``argmax(input_ids)`` rule.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

import open_clip  # vwbench.models (the package __init__) has installed the torchvision shim
from open_clip.transformer import TextTransformer

from vwbench.data.base import Example
from vwbench.errors import CheckpointNotFound, UserError
from vwbench.jsonio import read_json
from vwbench.models.base import (
    PROMPT_TEMPLATE,
    ConceptModel,
    EvalContext,
    TaskKind,
    TrainingData,
    Generators,
    Vocabulary,
    per_word_generators,
    sample_from_pool,
)
from vwbench.models import prompt_prefix
from vwbench.models.words import SpecialIds, WordPrompt, build_text_prompts, build_word_prompt, pool_at, splice
from vwbench.predictions import LabelPredictions, Predictions

CONFIG_FILE = "open_clip_config.json"
BPE_FILE = "bpe_simple_vocab.txt.gz"
WEIGHT_FILES = ("open_clip_model.safetensors", "open_clip_pytorch_model.bin")
IMAGE_BATCH = 32
TEXT_BATCH = 256

_PRECISION = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}


class CheckpointError(UserError):
    """A checkpoint folder is there but cannot be loaded (format, unsafe pickle, mismatch)."""


# --------------------------------------------------------------------------------------------
# Loading


class _DropOpenClipWeightWarnings(logging.Filter):
    """open_clip warns "initialized randomly" when built without weights; we load them after."""

    _NOISE = ("No pretrained weights loaded", "Local config loaded, but no CLIP weights")

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self._NOISE)


@contextlib.contextmanager
def _quiet_open_clip() -> Iterator[None]:
    noise = _DropOpenClipWeightWarnings()
    root = logging.getLogger()
    root.addFilter(noise)
    # open_clip logs through the module-level `logging.info`, which configures the root logger
    # (a stderr handler) when it has none: a library caller's later basicConfig would do nothing.
    # A handler of our own stands in while it builds, printing warnings as logging's last resort would.
    placeholder = logging.StreamHandler() if not root.handlers else None
    if placeholder is not None:
        placeholder.setLevel(logging.WARNING)
        root.addHandler(placeholder)
    try:
        yield
    finally:
        root.removeFilter(noise)
        if placeholder is not None:
            root.removeHandler(placeholder)


def preprocess_config(image_size: int) -> dict[str, Any]:
    """The ``preprocess_cfg`` a checkpoint folder's config holds for ``image_size`` px inputs:
    CLIP's mean and std, bicubic resize of the shorter side (what the zoo's models are built with)."""
    return {
        "size": image_size,
        "mean": list(open_clip.OPENAI_DATASET_MEAN),
        "std": list(open_clip.OPENAI_DATASET_STD),
        "interpolation": "bicubic",
        "resize_mode": "shortest",
    }


def build_open_clip(path: Path, *, precision: str = "fp32", device: str | torch.device = "cpu") -> nn.Module:
    """The architecture of ``path/open_clip_config.json`` through open_clip's factory, randomly
    initialized (weights are loaded separately, see :func:`load_weights`)."""
    _check_config(path)
    try:
        with _quiet_open_clip():
            return open_clip.create_model(
                f"local-dir:{path}", load_weights=False, pretrained_text=False, precision=precision, device=device
            )
    except (TypeError, AttributeError, ValueError, KeyError) as e:  # a config field missing or of the wrong type
        reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        raise CheckpointError(f"{path / CONFIG_FILE}: open_clip cannot build this config ({type(e).__name__}: {reason}); restore the checkpoint's own config") from e


def _check_config(path: Path) -> None:
    """Refuse, before building anything, towers that could not take spliced words or that open_clip
    would fetch from the network (HF text models)."""
    try:
        config = read_json(path / CONFIG_FILE)
        text_cfg = config["model_cfg"]["text_cfg"]
        if not isinstance(text_cfg, dict):
            raise TypeError("model_cfg.text_cfg is not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path / CONFIG_FILE}: not an open_clip config ({e})") from e
    if text_cfg.get("hf_model_name"):
        raise CheckpointError(
            f"{path}: text tower is the HF model {text_cfg['hf_model_name']!r}; only open_clip's own "
            f"CLIP text transformer can take spliced word vectors"
        )
    # the adapter tokenizes with CLIP's BPE and pools at the end-of-text position; a tower that
    # pools elsewhere or tokenizes otherwise would be scored wrongly without an error
    if text_cfg.get("pool_type", "argmax") not in ("argmax", "eos"):
        raise CheckpointError(f"{path}: text pool_type {text_cfg['pool_type']!r}; vwbench pools at the end-of-text token (argmax or eos)")
    if text_cfg.get("hf_tokenizer_name"):
        raise CheckpointError(f"{path}: text tokenizer {text_cfg['hf_tokenizer_name']!r}; vwbench reads words with CLIP's own BPE tokenizer")


def _read_state_dict(file: Path) -> dict[str, torch.Tensor]:
    """Tensors of a safetensors file or of a ``.bin`` read with ``weights_only=True``.

    open_clip's own ``load_state_dict`` retries *without* ``weights_only`` on a TypeError, which
    would unpickle arbitrary objects; it is deliberately not used.
    """
    if file.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(file), device="cpu")
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, TypeError, AttributeError) as e:
        raise CheckpointError(
            f"{file}: refused to load: it is not a plain tensor checkpoint "
            f"(torch.load with weights_only=True failed: {_pickle_reason(e)})"
        ) from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise CheckpointError(f"{file}: expected a dict of tensors, found {type(state).__name__}")
    for key, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise CheckpointError(f"{file}: entry {key!r} is a {type(value).__name__}, not a tensor")
    return state


def _pickle_reason(error: Exception) -> str:
    """The informative line of torch's weights-only refusal (it names the refused global)."""
    lines = [re.sub(r"\x1b\[[0-9;]*m", "", line).strip() for line in str(error).splitlines()]
    lines = [line for line in lines if line]
    for line in lines:
        if "Unsupported global" in line or "Unsupported operand" in line:
            return line
    return lines[0] if lines else type(error).__name__


def load_weights(model: nn.Module, file: Path) -> None:
    """Load a checkpoint file into ``model`` (strict: every key must match)."""
    state = _read_state_dict(file)
    if state and all(k.startswith("module.") for k in state):
        state = {k.removeprefix("module."): v for k, v in state.items()}
    scale = getattr(model, "logit_scale", None)
    if isinstance(scale, torch.Tensor) and "logit_scale" in state:
        state["logit_scale"] = state["logit_scale"].reshape(scale.shape)
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as e:
        # torch lists every mismatch on its own line under a heading: say the first, count the rest
        problems = [line.strip() for line in str(e).splitlines()[1:] if line.strip()] or [str(e).strip()]
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise CheckpointError(f"{file} does not match {CONFIG_FILE}: {problems[0]}{more}") from e


def _weights_file(path: Path) -> Path:
    for name in WEIGHT_FILES:
        if (path / name).is_file():
            return path / name
    raise CheckpointNotFound(f"{path}: no weights file ({' or '.join(WEIGHT_FILES)}); the checkpoint folder is incomplete: copy or download it again")


def _text_module(model: nn.Module) -> nn.Module:
    """The module that owns the text tower's parts (the CLIP itself, or a CustomTextCLIP's text)."""
    if isinstance(model, open_clip.CLIP):
        return model
    text = getattr(model, "text", None)
    if isinstance(text, TextTransformer) and text.cls_emb is None and not text.use_pad_mask:
        return text
    raise CheckpointError(
        f"unsupported open_clip text tower {type(text).__name__}: only the standard CLIP text "
        f"transformer (no HF text model, no class token) can take spliced word vectors"
    )


# --------------------------------------------------------------------------------------------
# The adapter


@dataclass
class ClipPrepared:
    """Normalized image features of every training image and, per concept, which rows are its."""

    features: torch.Tensor  # [N, D] float32, on the model's device
    concepts: list[str]
    positives: list[torch.Tensor]  # per concept: long cpu indices into features
    negatives: list[torch.Tensor]  # per concept: the other concepts' indices


class OpenClipAdapter(ConceptModel):
    """An open_clip CLIP: classification (Table 1's cosine loss) and zero-shot labelling."""

    family: ClassVar[str] = "clip"
    kind: ClassVar[TaskKind] = "classification"

    def __init__(
        self,
        model: nn.Module,
        tokenizer: open_clip.SimpleTokenizer,
        preprocess: Callable[[Image.Image], torch.Tensor],
        *,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.model = model.eval().requires_grad_(False)
        self.text = _text_module(model)
        self.tokenizer = tokenizer
        self.preprocess = preprocess
        self.device = device
        self.dtype = dtype
        self.special = SpecialIds(
            bos=tokenizer.sot_token_id,
            eos=tokenizer.eot_token_id,
            pad=int(getattr(self.text, "pad_id", 0)),
            context_length=int(self.text.context_length),
        )
        if len(tokenizer.encoder) > self.text.token_embedding.num_embeddings:
            raise CheckpointError(
                f"tokenizer has {len(tokenizer.encoder)} tokens, the text tower only "
                f"{self.text.token_embedding.num_embeddings} embedding rows"
            )
        self._word_prompts: dict[int, WordPrompt] = {}
        self._is_causal: bool | None = None
        self._prefix_states: dict[tuple[int, str, torch.dtype], prompt_prefix.PrefixState] = {}

    # ---- loading ---------------------------------------------------------------------------

    @classmethod
    def from_pretrained(
        cls, path: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> OpenClipAdapter:
        path = Path(path)
        if not (path / CONFIG_FILE).is_file():
            raise CheckpointNotFound(
                f"{path}: no {CONFIG_FILE}; an open_clip checkpoint folder is needed (copy or download it "
                f"again if it is incomplete; a transformers-format CLIP such as openai/clip-vit-large-patch14 "
                f"is not one: use its open_clip mirror timm/vit_large_patch14_clip_224.openai)"
            )
        if dtype not in _PRECISION:
            raise ValueError(f"unsupported dtype {dtype}; use one of {list(_PRECISION)}")
        device = torch.device(device)
        weights = _weights_file(path)
        model = build_open_clip(path, precision=_PRECISION[dtype], device=device)
        load_weights(model, weights)
        bpe = path / BPE_FILE
        context_length = int(_text_module(model).context_length)
        tokenizer = (
            open_clip.SimpleTokenizer(bpe_path=str(bpe), context_length=context_length)
            if bpe.is_file()
            else open_clip.SimpleTokenizer(context_length=context_length)
        )
        preprocess_cfg = open_clip.get_model_preprocess_cfg(model)
        preprocess = open_clip.image_transform(
            preprocess_cfg["size"],
            is_train=False,
            mean=preprocess_cfg.get("mean"),
            std=preprocess_cfg.get("std"),
            resize_mode=preprocess_cfg.get("resize_mode"),
            interpolation=preprocess_cfg.get("interpolation"),
            fill_color=preprocess_cfg.get("fill_color", 0),
        )
        return cls(model, tokenizer, preprocess, device=device, dtype=dtype)

    # ---- vocabulary ------------------------------------------------------------------------

    @property
    def embedding_dim(self) -> int:
        return int(self.text.token_embedding.embedding_dim)

    @property
    def feature_dim(self) -> int:
        """Width of the joint image-text space."""
        projection = self.text.text_projection
        if isinstance(projection, nn.Linear):
            return int(projection.out_features)
        if projection is not None:
            return int(projection.shape[1])
        return int(self.text.transformer.width)

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` without start and end tokens."""
        return list(self.tokenizer.encode(text))

    def vocabulary(self) -> Vocabulary:
        special = set(self.tokenizer.all_special_ids)
        pairs = sorted((i, t) for t, i in self.tokenizer.encoder.items() if i not in special)
        ids = torch.tensor([i for i, _ in pairs], dtype=torch.long)
        matrix = self.text.token_embedding.weight.detach()[ids.to(self.device)]
        return Vocabulary([t for _, t in pairs], matrix.to(device="cpu", dtype=torch.float32))

    def token_vectors(self, words: Sequence[str]) -> torch.Tensor:
        """Input embeddings ``[len(words), dim]`` (float32, cpu) of single-token words."""
        ids = []
        for word in words:
            tokens = self.encode(word)
            if len(tokens) != 1:
                pieces = [self.tokenizer.decoder[t] for t in tokens]
                raise ValueError(f"{word!r} is not a single token: it tokenizes to {pieces}")
            ids.append(tokens[0])
        rows = self.text.token_embedding.weight.detach()[torch.tensor(ids, device=self.device)]
        return rows.to(device="cpu", dtype=torch.float32)

    # ---- text features ---------------------------------------------------------------------

    def _causal_text(self) -> bool:
        """Whether the text tower's attention is causal (then no position sees later ones)."""
        if self._is_causal is None:
            mask = self.text.attn_mask
            self._is_causal = mask is not None and bool(
                torch.equal(mask, torch.full_like(mask, float("-inf")).triu(1))
            )
        return self._is_causal

    def _text_from_embeds(self, embeds: torch.Tensor, eos_positions: torch.Tensor | int) -> torch.Tensor:
        """open_clip's ``encode_text`` from input embeddings ``[B, L, w]`` on, pooled at the
        given end-of-text positions. Returns unnormalized float32 features ``[B, D]``.

        With causal attention the pooled state never depends on the positions after the last
        end-of-text position, so they are not computed (a word prompt uses 9 of 77 positions)."""
        cast = self.text.transformer.get_cast_dtype()
        x = embeds.to(cast) + self.text.positional_embedding.to(cast)
        mask = self.text.attn_mask
        if self._causal_text():
            length = int(eos_positions if isinstance(eos_positions, int) else eos_positions.max()) + 1
            x, mask = x[:, :length], mask[:length, :length]
        x = self.text.transformer(x, attn_mask=mask)
        return self._project(pool_at(self.text.ln_final(x), eos_positions))

    def _project(self, pooled: torch.Tensor) -> torch.Tensor:
        """The text projection of pooled, final-normed states, as float32 features."""
        projection = self.text.text_projection
        if isinstance(projection, nn.Linear):
            pooled = projection(pooled)
        elif projection is not None:
            pooled = pooled @ projection
        return pooled.float()

    def word_prompt(self, n_vectors: int) -> WordPrompt:
        if n_vectors not in self._word_prompts:
            self._word_prompts[n_vectors] = build_word_prompt(self.encode, self.special, n_vectors)
        return self._word_prompts[n_vectors]

    def encode_words(self, vectors: torch.Tensor) -> torch.Tensor:
        """Pooled text features ``[W, D]`` (float32, unnormalized) of "a photo of <word>"."""
        if vectors.ndim != 3 or vectors.shape[-1] != self.embedding_dim:
            raise ValueError(f"expected vectors [W, n, {self.embedding_dim}], got {tuple(vectors.shape)}")
        prompt = self.word_prompt(int(vectors.shape[1]))
        if self._causal_text() and prompt_prefix.supports(self.text.transformer):
            return self._words_after_prefix(vectors, prompt)
        ids = prompt.input_ids.to(self.device).expand(vectors.shape[0], -1)
        embeds = splice(self.text.token_embedding(ids), prompt.word_positions.to(self.device), vectors.to(self.device))
        return self._text_from_embeds(embeds, prompt.eos_position)

    def _words_after_prefix(self, vectors: torch.Tensor, prompt: WordPrompt) -> torch.Tensor:
        """:meth:`encode_words` with the prompt's word-independent prefix computed once
        (:mod:`vwbench.models.prompt_prefix`): the same features, about half the work."""
        cast = self.text.transformer.get_cast_dtype()
        start, end = int(prompt.word_positions[0]), prompt.eos_position + 1
        positions = self.text.positional_embedding.to(cast)
        key = (int(vectors.shape[1]), str(self.device), cast)
        if key not in self._prefix_states:
            prefix_ids = prompt.input_ids[:start].to(self.device)[None]
            prefix = self.text.token_embedding(prefix_ids).to(cast) + positions[:start]
            self._prefix_states[key] = prompt_prefix.prefix_state(self.text.transformer, prefix)
        suffix_ids = prompt.input_ids[start:end].to(self.device).expand(vectors.shape[0], -1)
        suffix = splice(self.text.token_embedding(suffix_ids), prompt.word_positions.to(self.device) - start, vectors.to(self.device))
        x = prompt_prefix.run_suffix(self.text.transformer, suffix.to(cast) + positions[start:end], self._prefix_states[key], end - 1 - start)
        return self._project(self.text.ln_final(x))

    def encode_texts(self, texts: Sequence[str]) -> torch.Tensor:
        """Pooled text features ``[N, D]`` (float32, unnormalized) of ordinary prompts."""
        chunks = []
        for start in range(0, len(texts), TEXT_BATCH):
            ids, eos = build_text_prompts(self.encode, self.special, texts[start : start + TEXT_BATCH])
            ids = ids.to(self.device)
            chunks.append(self._text_from_embeds(self.text.token_embedding(ids), eos.to(self.device)))
        return torch.cat(chunks) if chunks else torch.empty(0, self.feature_dim, device=self.device)

    # ---- image features --------------------------------------------------------------------

    @property
    def input_dtype(self) -> torch.dtype:
        """The dtype pixels go into the image tower in. Not the first parameter's: in half precision
        open_clip keeps the class and position embeddings in float32 and casts only the layers."""
        return open_clip.get_input_dtype(_PRECISION[self.dtype]) or torch.float32

    def encode_images(self, images: Sequence[Image.Image], batch_size: int = IMAGE_BATCH) -> torch.Tensor:
        """Normalized float32 image features ``[N, D]`` (no gradient)."""
        input_dtype = self.input_dtype
        chunks = []
        with torch.no_grad():
            for start in range(0, len(images), batch_size):
                batch = [self.preprocess(im.convert("RGB")) for im in images[start : start + batch_size]]
                pixels = torch.stack(batch).to(device=self.device, dtype=input_dtype)
                chunks.append(F.normalize(self.model.encode_image(pixels).float(), dim=-1))
        return torch.cat(chunks) if chunks else torch.empty(0, self.feature_dim, device=self.device)

    def _encode_examples(
        self,
        examples: Sequence[Example],
        batch_size: int = IMAGE_BATCH,
        progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        chunks = []
        batch_size = max(1, batch_size)

        def compute(todo: list[Image.Image]) -> list[dict[str, torch.Tensor]]:
            return [{"features": row} for row in self.encode_images(todo, batch_size)]

        for start in range(0, len(examples), batch_size):
            images = [e.load_image() for e in examples[start : start + batch_size]]
            rows = self.cached_image_side("image_features", images, compute)
            chunks.append(torch.stack([r["features"] for r in rows]))
            if progress is not None:
                progress(len(images))
        return torch.cat(chunks) if chunks else torch.empty(0, self.feature_dim, device=self.device)

    # ---- training --------------------------------------------------------------------------

    def prepare(self, data: TrainingData) -> ClipPrepared:
        """Encode every training image once. An image whose label is not one of
        ``data.concepts`` only ever serves as a negative."""
        features = self._encode_examples(data.examples)
        labels = [e.concept for e in data.examples]
        all_indices = torch.arange(len(labels))
        positives, negatives = [], []
        for name in data.concepts:
            mine = torch.tensor([label == name for label in labels], dtype=torch.bool)
            positives.append(all_indices[mine])
            negatives.append(all_indices[~mine])
        return ClipPrepared(features, list(data.concepts), positives, negatives)

    def loss(
        self,
        vectors: torch.Tensor,
        word_concepts: Sequence[int],
        prepared: ClipPrepared,
        generators: Generators,
        batch_size: int = 8,
    ) -> torch.Tensor:
        """Table 1: ``w * cos(e_image, e_text)``, -1 for the word's concept's images, +1 for the
        others', on ``batch_size`` sampled images of each kind per word (drawn from the word's
        own generator, positives first). Returns ``[W]``."""
        if len(word_concepts) != vectors.shape[0]:
            raise ValueError(f"{vectors.shape[0]} words but {len(word_concepts)} word concepts")
        pos, neg = [], []
        for c, generator in zip(word_concepts, per_word_generators(generators, len(word_concepts))):
            name = prepared.concepts[c]
            if prepared.positives[c].numel() == 0 or prepared.negatives[c].numel() == 0:
                raise ValueError(f"concept {name!r} needs training images of its own and of other concepts")
            pos.append(sample_from_pool(prepared.positives[c], batch_size, generator, f"concept {prepared.concepts[c]!r}"))
            neg.append(sample_from_pool(prepared.negatives[c], batch_size, generator, f"the concepts other than {prepared.concepts[c]!r}"))
        text = F.normalize(self.encode_words(vectors), dim=-1)  # [W, D] float32
        features = prepared.features
        pos_feats = features[torch.stack(pos).to(features.device)]  # [W, B, D]
        neg_feats = features[torch.stack(neg).to(features.device)]
        pos_cos = torch.einsum("wbd,wd->wb", pos_feats, text)
        neg_cos = torch.einsum("wbd,wd->wb", neg_feats, text)
        return neg_cos.mean(dim=1) - pos_cos.mean(dim=1)

    # ---- evaluation ------------------------------------------------------------------------

    def _class_features(self, class_names: Sequence[str], template: str) -> torch.Tensor:
        with torch.no_grad():
            return F.normalize(self.encode_texts([template.format(n) for n in class_names]), dim=-1)

    def predict(
        self,
        vectors: torch.Tensor,
        word_concepts: Sequence[int],
        heldout: Sequence[Example],
        ctx: EvalContext,
    ) -> list[Predictions]:
        """Label each held-out image among the trained word (for its target) and "a photo of
        {name}" for every other concept. ``ctx.progress`` counts held-out images encoded (they
        are shared by all words)."""
        if len(word_concepts) != vectors.shape[0]:
            raise ValueError(f"{vectors.shape[0]} words but {len(word_concepts)} word concepts")
        images = self._encode_examples(heldout, ctx.batch_size, ctx.progress)  # [N, D]
        actual = [e.concept for e in heldout]
        names = list(ctx.concepts)
        with torch.no_grad():
            base = images @ self._class_features(names, PROMPT_TEMPLATE).T  # [N, C]
            words = images @ F.normalize(self.encode_words(vectors), dim=-1).T  # [N, W]
        results: list[Predictions] = []
        for w, target in enumerate(word_concepts):
            scores = base.clone()
            scores[:, target] = words[:, w]
            predicted = [names[i] for i in scores.argmax(dim=1).tolist()]
            results.append(LabelPredictions(target=names[target], predicted=predicted, actual=list(actual)))
        return results

    def classify_images(
        self, images: Sequence[Image.Image], class_names: Sequence[str], template: str = PROMPT_TEMPLATE
    ) -> list[str]:
        if not class_names:
            raise ValueError("classify_images needs at least one class name")
        classes = self._class_features(class_names, template)
        labels: list[str] = []
        for start in range(0, len(images), IMAGE_BATCH):
            scores = self.encode_images(images[start : start + IMAGE_BATCH]) @ classes.T
            labels.extend(class_names[i] for i in scores.argmax(dim=1).tolist())
        return labels

    def __repr__(self) -> str:
        return f"OpenClipAdapter(dim={self.embedding_dim}, device={self.device}, dtype={self.dtype})"
