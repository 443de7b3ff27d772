"""A built-in transfer method behind the submission interface (what ``submissions/ref-*`` use).

The sandboxed child hands a submission numpy arrays: ``fit(source [n, ds], target [n, dt],
tokens)`` over the shared vocabulary rows and ``map(vectors [m, ds], init_words)``. This class
adapts a registry method to that, so the reference submissions run exactly the built-in code
through exactly the path a stranger's submission takes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch

from vwbench.transfer import get_transfer


@dataclass
class _Rows:
    tokens: list[str]
    matrix: torch.Tensor


class BuiltinTransfer:
    """Set ``method`` (a registry name) and optionally ``params`` in a subclass."""

    method: ClassVar[str]
    params: ClassVar[dict[str, Any]] = {}
    uses_init_words = True

    def fit(self, source: np.ndarray, target: np.ndarray, tokens: list[str]) -> None:
        self._impl = get_transfer(self.method, **self.params)
        self._impl.fit(_Rows(list(tokens), torch.from_numpy(np.array(source))), _Rows(list(tokens), torch.from_numpy(np.array(target))))

    def map(self, vectors: np.ndarray, init_words: list[str] | None = None) -> np.ndarray:
        v = torch.from_numpy(np.array(vectors))
        out = self._impl.map_words(v, init_words) if init_words is not None and self._impl.uses_init_words else self._impl.map(v)
        return out.numpy()

    def describe(self) -> dict[str, Any]:
        return self._impl.describe()
