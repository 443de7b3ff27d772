"""The models a submission is made for, loaded exactly as ``vwbench run`` loads them.

For making a linear map or trained words outside vwbench (see ``submissions/README.md``)::

    from vwbench.submissions import load_model, shared_rows

    clip, owl = load_model("clip", tier="mini"), load_model("owlv2", tier="mini")
    Y, X, tokens = shared_rows(clip.vocabulary(), owl.vocabulary())
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vwbench.errors import UserError

if TYPE_CHECKING:
    from vwbench.models.base import ConceptModel


def load_model(role: str, *, tier: str, tasks_dir: Path | None = None, weights: Path | None = None) -> ConceptModel:
    """The model adapter of ``tier``'s ``role``: a family (``sd``, ``owlv2``, ``clip``) or
    ``judge``, on the CPU in float32, from the checkpoint the tier's runs use (its sha256
    manifest checked). ``.vocabulary()`` is its input-embedding table (``tokens``, ``matrix``,
    ``hash()``), ``.token_vectors(words)`` the rows of single-token words.

    ``tasks_dir`` and ``weights`` are ``vwbench run``'s ``--tasks-dir`` and ``--weights``.
    An unknown tier or role is a :class:`UserError` naming the known ones."""
    import torch

    from vwbench.registry import TaskRegistry, resolve_checkpoint
    from vwbench.runner import load_resolved

    specs = TaskRegistry.from_dir(tasks_dir).models(tier)
    if role not in specs:
        raise UserError(f"tier {tier} has no model {role!r} (its roles: {', '.join(specs)})")
    spec = specs[role]
    resolved = resolve_checkpoint(spec.checkpoint, weights)
    return load_resolved(spec.family, resolved, torch.device("cpu"), torch.float32, spec.checkpoint)
