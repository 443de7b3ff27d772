"""The transfer-function interface: carry words from a source model's input-embedding space into
a target model's.

A transfer method is fitted on two vocabularies (objects with ``.tokens: list[str]`` and
``.matrix: Tensor[n, dim]``, e.g. :class:`vwbench.models.base.Vocabulary`) and then maps any
tensor of source vectors ``[..., ds]`` to target vectors ``[..., dt]``. Vocabularies are
duck-typed so that this package never imports model code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

import torch

from vwbench.errors import UserError

if TYPE_CHECKING:
    from typing_extensions import Self


class VocabularyLike(Protocol):
    """What transfer needs of a vocabulary: row ``i`` of ``matrix`` embeds ``tokens[i]``."""

    tokens: list[str]
    matrix: torch.Tensor


def _dim(vocab: VocabularyLike) -> int:
    if vocab.matrix.ndim != 2:
        raise ValueError(f"vocabulary matrix must be 2-d [n, dim], got {tuple(vocab.matrix.shape)}")
    return int(vocab.matrix.shape[1])


def _index(vocab: VocabularyLike, side: str) -> dict[str, int]:
    index = {t: i for i, t in enumerate(vocab.tokens)}
    if len(index) != len(vocab.tokens):
        seen: set[str] = set()
        dup = ""
        for t in vocab.tokens:
            if t in seen:
                dup = t
                break
            seen.add(t)
        raise ValueError(f"{side} vocabulary lists token {dup!r} more than once; rows cannot be aligned")
    if vocab.matrix.shape[0] != len(vocab.tokens):
        raise ValueError(
            f"{side} vocabulary has {len(vocab.tokens)} tokens but {vocab.matrix.shape[0]} matrix rows"
        )
    return index


def shared_rows(
    source_vocab: VocabularyLike, target_vocab: VocabularyLike, min_shared: int | None = None
) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Rows of the tokens both vocabularies contain, aligned by token string.

    Returns ``(Y [n, ds], X [n, dt], tokens)``: ``Y[i]`` is the source row and ``X[i]`` the
    target row of ``tokens[i]``; tokens are sorted (so the result does not depend on either
    vocabulary's row order) and tokens only one side has are left out. Rows keep the matrices'
    dtype and device.

    Raises ``ValueError`` when fewer than ``min_shared`` tokens are shared (default: source dim
    + 1, the least for an overdetermined fit of a ``ds``-column linear map).
    """
    ds = _dim(source_vocab)
    _dim(target_vocab)
    src = _index(source_vocab, "source")
    tgt = _index(target_vocab, "target")
    tokens = sorted(src.keys() & tgt.keys())
    need = ds + 1 if min_shared is None else min_shared
    if len(tokens) < need:
        raise ValueError(
            f"the two vocabularies share {len(tokens)} tokens, fewer than the {need} needed to fit "
            f"a transfer from a {ds}-dim source space (source has {len(src)} tokens, target "
            f"{len(tgt)})"
        )
    src_idx = torch.tensor([src[t] for t in tokens], dtype=torch.long, device=source_vocab.matrix.device)
    tgt_idx = torch.tensor([tgt[t] for t in tokens], dtype=torch.long, device=target_vocab.matrix.device)
    return source_vocab.matrix[src_idx], target_vocab.matrix[tgt_idx], tokens


def apply_float64(vectors: torch.Tensor, matrix64: torch.Tensor) -> torch.Tensor:
    """``vectors @ matrix64`` computed in float64 (on the CPU where the device has no float64,
    e.g. MPS), returned on the vectors' device and dtype: the linear maps solve in float64 and
    apply in float64 so that a map and its submitted copy agree to the last bit."""
    compute = vectors.device if vectors.device.type != "mps" else torch.device("cpu")
    out = vectors.to(compute, torch.float64) @ matrix64.to(compute)
    return out.to(vectors.device, vectors.dtype)


class IncompatibleSpaces(UserError, ValueError):
    """A transfer method that cannot map between two embedding widths (e.g. ``identity`` between
    models of different widths): a user's choice to fix, and a ``ValueError`` for library callers."""


class TransferMethod(ABC):
    """Maps input-embedding vectors of a source model into a target model's embedding space.

    Subclasses set ``name`` and implement ``_fit`` and ``_map``; the public ``fit``/``map`` do the
    bookkeeping (state and shape checks) once for all methods::

        t = get_transfer("lstsq").fit(source_vocab, target_vocab)
        target_words = t.map(source_words)          # [W, n_vectors, ds] -> [W, n_vectors, dt]
        provenance = t.describe()
    """

    name: ClassVar[str]
    uses_init_words: ClassVar[bool] = False  # True: needs map_words(), map() alone cannot work

    def __init__(self) -> None:
        self.source_dim: int | None = None
        self.target_dim: int | None = None
        self.source_hash: str | None = None  # Vocabulary.hash() of what it was fitted on, if known
        self.target_hash: str | None = None

    @property
    def fitted(self) -> bool:
        return self.source_dim is not None

    def check_spaces(self, source_dim: int, target_dim: int) -> None:
        """Raise :class:`IncompatibleSpaces` when this method cannot map ``source_dim``-wide
        vectors into a ``target_dim``-wide space at all (checked by ``fit``, and by a run as soon
        as both models are loaded, before any training)."""

    def preflight(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike, init_words: Sequence[str], n_vectors: int) -> None:
        """What can fail before any word is trained, beyond :meth:`check_spaces`: a run calls it
        once both models are loaded, with each concept's init word and the words' vector count.
        Built-in methods have nothing to try; a submitted method
        (:class:`vwbench.submissions.transfers.SandboxedTransfer`) is fitted and maps one word per
        concept, shaped as the run's words will be."""

    def fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> Self:
        """Fit on the two vocabularies; returns ``self`` (refitting replaces the previous fit)."""
        self.source_dim = self.target_dim = None
        self.check_spaces(_dim(source_vocab), _dim(target_vocab))
        self._fit(source_vocab, target_vocab)
        self.source_dim, self.target_dim = _dim(source_vocab), _dim(target_vocab)
        self.source_hash, self.target_hash = vocabulary_hash(source_vocab), vocabulary_hash(target_vocab)
        return self

    def map(self, vectors: torch.Tensor) -> torch.Tensor:
        """Map source vectors ``[..., ds]`` (any leading dims) to target vectors ``[..., dt]``, in
        the input's dtype and on its device."""
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} must be fitted before map(): call fit(source, target)")
        if not torch.is_floating_point(vectors):
            raise ValueError(f"{self.name} transfer maps floating-point vectors, got {vectors.dtype}")
        if vectors.ndim == 0 or vectors.shape[-1] != self.source_dim:
            raise ValueError(
                f"{self.name} transfer maps vectors of dim {self.source_dim}, got shape {tuple(vectors.shape)}"
            )
        return self._map(vectors)

    def map_words(self, vectors: torch.Tensor, init_words: Sequence[str]) -> torch.Tensor:
        """Map a word set ``[W, ..., ds]`` whose word ``w`` belongs to a concept with init word
        ``init_words[w]``. Methods that ignore the vectors (``anchor``) use the words; for every
        other method this is ``map(vectors)``."""
        if not self.uses_init_words:
            return self.map(vectors)
        if not self.fitted:
            raise RuntimeError(f"{type(self).__name__} must be fitted before map_words(): call fit(source, target)")
        return self._map_words(vectors, list(init_words))

    def _map_words(self, vectors: torch.Tensor, init_words: list[str]) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} sets uses_init_words but does not implement _map_words")

    def describe(self) -> dict[str, Any]:
        """Name and parameters, for provenance (JSON-serializable)."""
        return {
            "name": self.name,
            "fitted": self.fitted,
            "source_dim": self.source_dim,
            "target_dim": self.target_dim,
            "source_vocab_hash": self.source_hash,
            "target_vocab_hash": self.target_hash,
            **self._describe(),
        }

    @abstractmethod
    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        """Fit the method's parameters (raise ``ValueError`` on unusable vocabularies)."""

    @abstractmethod
    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        """Map ``[..., ds]`` to ``[..., dt]``; shape and fit state are already checked."""

    def _describe(self) -> dict[str, Any]:
        """Method-specific provenance entries."""
        return {}

    def __repr__(self) -> str:
        state = f"{self.source_dim}->{self.target_dim}" if self.fitted else "unfitted"
        return f"{type(self).__name__}({state})"


def vocabulary_hash(vocab: VocabularyLike) -> str | None:
    """``vocab.hash()`` where the vocabulary provides one (provenance), else ``None``."""
    h = getattr(vocab, "hash", None)
    return h() if callable(h) else None
