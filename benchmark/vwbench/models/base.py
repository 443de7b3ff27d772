"""The adapter interface shared by the three model families (and the generation judge).

A word set is a float tensor ``vectors[W, n_vectors, dim]``: W words (concepts x trials), each a
few input-embedding vectors that are spliced into the prompt "a photo of <word>" at placeholder
positions. The frozen embedding table is never touched, so many words train in one batch and
each word's gradient depends on its own vectors only.

Life of an adapter in a run::

    model = Adapter.from_pretrained(path, device=..., dtype=...)
    init = model.token_vectors(["dog", "cat"])        # single-token init words -> [2, dim]
    prepared = model.prepare(TrainingData(...))       # frozen image side, computed once
    loss = model.loss(vectors, word_concepts, prepared, generators, batch_size)  # -> [W]
    preds = model.predict(vectors, word_concepts, heldout, ctx)  # -> one Predictions per word
    vocab = model.vocabulary()                        # input-embedding rows keyed by token string
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal, Union

import torch
from PIL import Image

from vwbench.cache.features import FeatureCache
from vwbench.errors import UserError
from vwbench.data.base import Example
from vwbench.predictions import Predictions
from vwbench.results.words_store import release_key_part

TaskKind = Literal["generation", "detection", "classification"]
Generators = Union[torch.Generator, Sequence[torch.Generator]]  # one per word, or one shared
PROMPT_TEMPLATE = "a photo of {}"


@dataclass
class Vocabulary:
    """A model's input-embedding matrix with the token string of each row.

    Token strings are in CLIP BPE form (``"dog</w>"``), so the rows of two models that share the
    CLIP vocabulary line up by string. Special tokens are excluded.
    """

    tokens: list[str]
    matrix: torch.Tensor  # [n, dim], float32, cpu

    def __post_init__(self) -> None:
        if self.matrix.ndim != 2 or self.matrix.shape[0] != len(self.tokens):
            raise ValueError(
                f"vocabulary matrix {tuple(self.matrix.shape)} does not match {len(self.tokens)} tokens"
            )

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def token_hash(self) -> str:
        """Hash of the token strings only: equal for models sharing a tokenizer."""
        return hashlib.sha256("\n".join(self.tokens).encode()).hexdigest()

    def hash(self) -> str:
        """Hash of token strings and matrix values: identifies this exact embedding table."""
        h = hashlib.sha256("\n".join(self.tokens).encode())
        h.update(self.matrix.detach().to(torch.float32).contiguous().numpy().tobytes())
        return h.hexdigest()

    def rows(self, tokens: Sequence[str]) -> torch.Tensor:
        index = {t: i for i, t in enumerate(self.tokens)}
        return self.matrix[[index[t] for t in tokens]]


@dataclass
class TrainingData:
    """The training images of all concepts of a run, and the concept order words refer to."""

    examples: list[Example]
    concepts: list[str]

    def indices_of(self, concept_index: int) -> list[int]:
        name = self.concepts[concept_index]
        return [i for i, e in enumerate(self.examples) if e.concept == name]


@dataclass
class EvalContext:
    """Everything evaluation needs besides the words and the held-out images.

    ``concepts`` are the dataset's concept names, in the order ``word_concepts`` indexes.
    ``judge`` is the classifier that labels generated images (generation only).
    """

    concepts: list[str]
    seed: int = 0
    judge: ConceptModel | None = None
    generations_per_word: int = 8
    inference_steps: int = 50
    batch_size: int = 8
    progress: Callable[[int], None] | None = None  # called with the number of items just done
    options: dict[str, Any] = field(default_factory=dict)


class ConceptModel(ABC):
    """One model family behind the benchmark's single adapter interface."""

    family: ClassVar[str]  # registry name: "sd", "owlv2", "clip"
    kind: ClassVar[TaskKind]

    device: torch.device
    dtype: torch.dtype
    feature_cache: FeatureCache | None = None  # set by use_feature_cache
    feature_identity: dict[str, Any] = {}
    step_modules: ClassVar[tuple[str, ...]] = ()  # attributes naming the heavy frozen modules a training step runs

    def compile_step_modules(self) -> list[str]:
        """``torch.compile`` the heavy frozen modules of a training step in place (``step_modules``)
        and return their names. The first steps then pay the compilation (minutes for a large
        UNet); a family that names no module is left as it is."""
        for name in self.step_modules:
            getattr(self, name).compile()
        return list(self.step_modules)

    def cpu_words_per_pass(self, batch_size: int) -> int | None:
        """Words per forward/backward pass of word training on a CPU; ``None``: all of them in
        one pass. Families whose step is light (text towers over cached image features) gain
        from one large pass; a family whose step holds large activations caps it."""
        return None

    def use_feature_cache(self, cache: FeatureCache | None, identity: dict[str, Any]) -> None:
        """Keep the frozen image side (features, regions, latents) in ``cache`` on disk.
        ``identity`` names the checkpoint (e.g. its file hashes); the cache namespace adds the
        family, dtype, device type and the feature kind."""
        self.feature_cache = cache
        self.feature_identity = {**identity, "family": self.family, "dtype": str(self.dtype), "device": self.device.type}

    def cached_image_side(
        self, kind: str, images: Sequence[Image.Image], compute: Callable[[list[Image.Image]], list[dict[str, torch.Tensor]]]
    ) -> list[dict[str, torch.Tensor]]:
        """Per-image tensors of ``kind``: from the feature cache when one is attached, else (and for
        the images it lacks) from ``compute``, which gets a list of images and returns one dict
        of tensors per image."""
        if self.feature_cache is None:
            return compute(list(images))
        namespace = self.feature_cache.namespace({**self.feature_identity, "kind": kind, **release_key_part()})
        rows = self.feature_cache.fetch(namespace, images, compute)
        return [{k: v.to(self.device) for k, v in row.items()} for row in rows]

    @classmethod
    @abstractmethod
    def from_pretrained(
        cls, path: Path, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32
    ) -> ConceptModel:
        """Load from a local checkpoint folder (its family's own on-disk format)."""

    @property
    @abstractmethod
    def embedding_dim(self) -> int:
        """Width of the text encoder's input embeddings (the space words live in)."""

    @abstractmethod
    def vocabulary(self) -> Vocabulary:
        """The frozen input-embedding table keyed by token string (special tokens excluded)."""

    @abstractmethod
    def word_prompt(self, n_vectors: int) -> Any:
        """The token ids of "a photo of <word>" with ``n_vectors`` word slots
        (:class:`~vwbench.models.words.WordPrompt`). Raises ``ValueError`` when the prompt does
        not fit the text encoder's context."""

    def check_word_fits(self, n_vectors: int, fix: str = "lower n_vectors in the task's hyperparameters") -> None:
        """A one-line :class:`UserError` (ending with ``fix``) when words of ``n_vectors`` vectors
        do not fit this model's text context (checked before training, not after it)."""
        try:
            self.word_prompt(n_vectors)
        except ValueError as exc:
            raise UserError(f"{self.family}: words of {n_vectors} vectors do not fit its prompt ({exc}); {fix}") from exc

    @abstractmethod
    def token_vectors(self, words: Sequence[str]) -> torch.Tensor:
        """Input embeddings ``[len(words), dim]`` of single-token words. Raises ``ValueError``
        naming the word if one is not a single token."""

    @abstractmethod
    def prepare(self, data: TrainingData) -> Any:
        """Compute what never depends on the word (latents, region or image features) once."""

    @abstractmethod
    def loss(
        self,
        vectors: torch.Tensor,
        word_concepts: Sequence[int],
        prepared: Any,
        generators: Generators,
        batch_size: int = 8,
    ) -> torch.Tensor:
        """Per-word task loss ``[W]`` for ``vectors[W, n, dim]``; word ``w`` is a word for concept
        ``word_concepts[w]`` (an index into ``prepared``'s concepts). Each entry depends only on
        its own word's vectors, so summing and back-propagating trains every word independently.

        ``generators`` holds one generator per word: word ``w``'s random draws (its images, and
        for generation its timesteps and noise) come from ``generators[w]`` alone, so a word
        trains the same whichever words share its batch. A single generator is shared by all
        words, drawn word after word."""

    @abstractmethod
    def predict(
        self,
        vectors: torch.Tensor,
        word_concepts: Sequence[int],
        heldout: Sequence[Example],
        ctx: EvalContext,
    ) -> list[Predictions]:
        """Evaluate each word on held-out data; one :class:`Predictions` per word."""

    def classify_images(
        self, images: Sequence[Image.Image], class_names: Sequence[str], template: str = PROMPT_TEMPLATE
    ) -> list[str]:
        """Zero-shot label of each image among ``class_names`` (prompt ``template``). Classifier
        adapters implement it; it is how the generation judge labels generated images."""
        raise NotImplementedError(f"{type(self).__name__} is not a classifier")

    def encode_words(self, vectors: torch.Tensor) -> torch.Tensor:
        """Pooled (end-of-text) text features of "a photo of <word>" for each word ``[W, d]``.

        Used by analyses; adapters whose loss uses pooled features implement it. Optional."""
        raise NotImplementedError(f"{type(self).__name__} does not expose pooled word features")


def per_word_generators(generators: Generators, n_words: int) -> list[torch.Generator]:
    """One generator per word: ``generators`` itself when it is a sequence of ``n_words``, or one
    shared generator repeated."""
    if isinstance(generators, torch.Generator):
        return [generators] * n_words
    generators = list(generators)
    if len(generators) != n_words:
        raise ValueError(f"{n_words} words but {len(generators)} random generators")
    return generators


def sample_from_pool(pool: torch.Tensor, k: int, generator: torch.Generator, what: str = "concept") -> torch.Tensor:
    """``k`` entries of ``pool`` (1-d): without replacement when it has enough, else with.

    All adapters draw their training batches through this, so every family consumes the
    generator the same way."""
    n = int(pool.numel())
    if n == 0:
        raise ValueError(f"{what} has no training images")
    if n >= k:
        pick = torch.randperm(n, generator=generator, device=generator.device)[:k]
    else:
        pick = torch.randint(n, (k,), generator=generator, device=generator.device)
    return pool[pick.cpu()]
