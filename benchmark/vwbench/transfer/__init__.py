"""Transfer functions: carry words from one model's input-embedding space into another's.

``get_transfer(name)`` builds a method by registry name; ``fit(source_vocab, target_vocab)`` fits
it on the two vocabularies, and ``map(vectors)`` converts words. This package knows nothing about
models: vocabularies are anything with ``.tokens`` and ``.matrix``.

=============  ==================================================================
name           method
=============  ==================================================================
``lstsq``      least squares over the shared vocabulary rows, ``y @ T`` (paper)
``identity``   ``x -> x``, for in-domain evaluation (the ceiling, on ``x->x`` tasks)
``ridge``      ridge regression, penalty chosen on held-out shared rows
``procrustes`` orthogonal map after centring and scaling both spaces
``knn``        softmax-weighted mix of the target rows of the nearest shared words
``anchor``     the concept's init word in the target model, untrained
``random``     a random linear map matched in location and scale (the floor)
=============  ==================================================================
"""

from __future__ import annotations

import difflib
from typing import Any

from vwbench.errors import UserError
from vwbench.transfer.base import TransferMethod, VocabularyLike, shared_rows
from vwbench.transfer.identity import IdentityTransfer
from vwbench.transfer.anchor import AnchorTransfer
from vwbench.transfer.knn import KnnTransfer
from vwbench.transfer.lstsq import LeastSquaresTransfer
from vwbench.transfer.procrustes import ProcrustesTransfer
from vwbench.transfer.random_map import RandomTransfer
from vwbench.transfer.ridge import RidgeTransfer

TRANSFER_METHODS: dict[str, type[TransferMethod]] = {
    cls.name: cls
    for cls in (
        LeastSquaresTransfer, IdentityTransfer, RidgeTransfer, ProcrustesTransfer, KnnTransfer, AnchorTransfer, RandomTransfer,
    )
}


def get_transfer(name: str, **params: Any) -> TransferMethod:
    """A new, unfitted transfer method by registry name (``params`` go to its constructor).

    Raises ``UserError`` for an unknown name, suggesting the closest known one.
    """
    cls = TRANSFER_METHODS.get(name)
    if cls is None:
        close = difflib.get_close_matches(name, list(TRANSFER_METHODS), n=1, cutoff=0.5)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise UserError(
            f"unknown transfer method {name!r}{hint} (known: {', '.join(sorted(TRANSFER_METHODS))}; "
            f"a submission is given by its path, e.g. ./{name})"
        )
    return cls(**params)


__all__ = [
    "TRANSFER_METHODS",
    "AnchorTransfer",
    "KnnTransfer",
    "ProcrustesTransfer",
    "RandomTransfer",
    "RidgeTransfer",
    "IdentityTransfer",
    "LeastSquaresTransfer",
    "TransferMethod",
    "VocabularyLike",
    "get_transfer",
    "shared_rows",
]
