"""Submissions as :class:`~vwbench.transfer.TransferMethod` objects, for ``vwbench run --transfer PATH``.

* :class:`LinearMapTransfer`: a linear-map file (``weight @ y + bias``); its vocabulary hashes
  must match the models it is used between.
* :class:`SandboxedTransfer`: a transfer-method folder, fitted and applied in the sandbox
  (:mod:`vwbench.submissions.sandbox`). ``fit`` only gathers the shared rows; the submission's
  code runs in ``map_words``, which fits and maps in one child process: once to try it before
  any word is trained (``preflight``), once on the run's words.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from vwbench.errors import UserError
from vwbench.submissions.sandbox import Limits, run_transfer_submission, snapshot_submission
from vwbench.submissions.schema import LinearMapMeta, SubmissionManifest
from vwbench.submissions.validate import check_linear_map, check_transfer_folder, weight_shape_problem
from vwbench.transfer import TRANSFER_METHODS, TransferMethod, get_transfer
from vwbench.transfer.base import IncompatibleSpaces, VocabularyLike, shared_rows, vocabulary_hash


class LinearMapTransfer(TransferMethod):
    """A submitted linear map: ``mapped = y @ weightᵀ + bias``."""

    name = "linear-map"

    def __init__(self, path: Path) -> None:
        super().__init__()
        report = check_linear_map(Path(path))
        report.raise_if_bad()
        self.path = Path(path)
        self.meta: LinearMapMeta = report.info["meta"]
        self.name = self.meta.name
        self.weight64 = report.info["weight"].to(torch.float64)
        bias = report.info["bias"]
        self.bias64 = None if bias is None else bias.to(torch.float64)
        self.sha256 = hashlib.sha256(self.path.read_bytes()).hexdigest()

    def check_pair(self, source_family: str, target_family: str) -> None:
        if (self.meta.source, self.meta.target) != (source_family, target_family):
            raise UserError(
                f"{self.path}: this linear map is for {self.meta.source}->{self.meta.target}, the task is {source_family}->{target_family}"
            )

    def check_spaces(self, source_dim: int, target_dim: int) -> None:
        problem = weight_shape_problem(list(self.weight64.shape), target_dim, source_dim)
        if problem is not None:
            raise IncompatibleSpaces(f"{self.path}: {problem}")

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        for side, vocab, expected in (("source", source_vocab, self.meta.source_vocab_hash), ("target", target_vocab, self.meta.target_vocab_hash)):
            actual = vocabulary_hash(vocab)
            if actual is not None and actual != expected:
                raise UserError(
                    f"{self.path}: {side}_vocab_hash {expected[:12]}… does not match the {side} model's vocabulary ({actual[:12]}…); "
                    "the map was made for other checkpoints"
                )

    def preflight(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike, init_words: Sequence[str], n_vectors: int) -> None:
        """The fit: the map's vocabulary hashes against the models' (made for other checkpoints
        is then an error before the words are trained)."""
        self.fit(source_vocab, target_vocab)

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        out = vectors.detach().to("cpu", torch.float64) @ self.weight64.T
        if self.bias64 is not None:
            out = out + self.bias64
        return out.to(vectors.device, vectors.dtype)

    def _describe(self) -> dict[str, Any]:
        return {"submission": {"kind": "linear-map", "file": self.path.name, "path": str(self.path), "sha256": self.sha256, **self.meta.model_dump(exclude_none=True)}}


class SandboxedTransfer(TransferMethod):
    """A submitted Python transfer method, run in the sandbox."""

    name = "sandboxed"
    uses_init_words = True  # passed through; the submission decides whether it uses them

    def __init__(self, folder: Path, limits: Limits | None = None) -> None:
        super().__init__()
        report = check_transfer_folder(Path(folder))
        report.raise_if_bad()
        self.folder = Path(folder)
        self.manifest: SubmissionManifest = report.info["manifest"]
        self.name = self.manifest.name
        self.limits = limits or Limits()
        # read once: every sandbox run (the preflight, then the run after training) executes these
        # bytes, whose hash is the one the result records, whatever happens to the folder meanwhile
        self.snapshot = snapshot_submission(self.folder)
        self.sha256 = self.snapshot.sha256
        self._rows: tuple | None = None
        self.submission_describe: dict = {}
        self.sandbox: dict = {}

    def _fit(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike) -> None:
        Y, X, tokens = shared_rows(source_vocab, target_vocab, min_shared=1)
        self._rows = (Y.detach().to("cpu", torch.float32).numpy(), X.detach().to("cpu", torch.float32).numpy(), tokens)

    def _map(self, vectors: torch.Tensor) -> torch.Tensor:
        return self._map_words(vectors, [""] * vectors.shape[0] if vectors.ndim > 1 else [""])

    def _map_words(self, vectors: torch.Tensor, init_words: list[str]) -> torch.Tensor:
        assert self._rows is not None and self.target_dim is not None
        Y, X, tokens = self._rows
        lead = vectors.shape[:-1]
        flat = vectors.detach().to("cpu", torch.float32).reshape(-1, vectors.shape[-1])
        per_word = flat.shape[0] // max(1, len(init_words))
        flat_words = [w for w in init_words for _ in range(per_word)] if vectors.ndim > 1 else list(init_words)
        mapped, self.submission_describe, self.sandbox = run_transfer_submission(
            self.snapshot, self.manifest.entry, self.manifest.class_name, Y, X, tokens, flat.numpy(), flat_words, self.limits,
            label=f"submission {self.manifest.name}",
        )
        if mapped.shape[1] != self.target_dim:
            from vwbench.submissions.sandbox import SubmissionFailure

            raise SubmissionFailure(f"submission {self.manifest.name}: map() returned {mapped.shape[1]}-dim vectors, the target model's are {self.target_dim}-dim")
        return torch.from_numpy(mapped).reshape(*lead, self.target_dim).to(vectors.device, vectors.dtype)

    def preflight(self, source_vocab: VocabularyLike, target_vocab: VocabularyLike, init_words: Sequence[str], n_vectors: int) -> None:
        """Fit on the real vocabularies and map, in the sandbox, one word per concept shaped as
        the run's words (``n_vectors`` copies of the concept's init-word row, so as many rows as
        one trial of the run maps): a submission that fails, or maps to the wrong width, is then
        an error before the words are trained rather than after."""
        self.fit(source_vocab, target_vocab)
        index = {t: i for i, t in enumerate(source_vocab.tokens)}
        rows = [index.get(w + "</w>", 0) for w in init_words]
        words = source_vocab.matrix[rows].to(torch.float32).unsqueeze(1).repeat(1, n_vectors, 1)
        self.map_words(words, list(init_words))

    def _describe(self) -> dict[str, Any]:
        about = self.manifest.model_dump(mode="json", by_alias=True, exclude_none=True)
        return {"submission": {"kind": "transfer-method", "path": str(self.folder), "sha256": self.sha256, **about}, "reported": self.submission_describe, "sandbox": self.sandbox}


def looks_like_path(arg: str) -> bool:
    return arg not in TRANSFER_METHODS and ("/" in arg or arg.endswith((".safetensors", ".yaml", ".py")) or Path(arg).exists())


def resolve_transfer(arg: str, source_family: str, target_family: str, limits: Limits | None = None) -> TransferMethod:
    """A built-in method by name, or a submission by path (folder, submission.yaml, or linear-map file)."""
    if not looks_like_path(arg):
        return get_transfer(arg)
    path = Path(arg)
    if not path.exists():
        raise UserError(f"--transfer {arg}: no such file or folder (give a built-in name: {', '.join(sorted(TRANSFER_METHODS))}, or a submission path)")
    from vwbench.submissions.validate import detect_kind

    kind = detect_kind(path)
    if kind == "transfer-method":
        return SandboxedTransfer(path if path.is_dir() else path.parent, limits)
    if kind == "linear-map":
        method = LinearMapTransfer(path)
        method.check_pair(source_family, target_family)
        return method
    if kind == "embeddings":
        raise UserError(f"--transfer {arg}: this is an embeddings file; pass it with --embeddings")
    from vwbench.submissions.validate import validate

    validate(path).raise_if_bad()
    raise UserError(f"--transfer {arg}: not a submission (run `vwbench validate {arg}`)")
