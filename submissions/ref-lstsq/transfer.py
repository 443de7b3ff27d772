"""Reference submission: the paper's least-squares map, written against numpy only.

This is the whole interface a transfer method implements. vwbench runs it in a sandbox and
hands it float32 numpy arrays:

* ``fit(source, target, tokens)``: ``source [n, d_source]`` and ``target [n, d_target]`` are the
  two models' input-embedding rows of the ``n`` tokens both vocabularies share (``tokens[i]`` is
  row ``i``'s token, in CLIP BPE form such as ``"dog</w>"``);
* ``map(vectors)``: source vectors ``[m, d_source]`` -> target vectors ``[m, d_target]``;
* ``describe()`` (optional): a JSON-serialisable dict stored with the result.

A class that sets ``uses_init_words = True`` gets ``map(vectors, init_words)``, the init word of
each vector's concept.
"""

import numpy as np


class Transfer:
    def fit(self, source: np.ndarray, target: np.ndarray, tokens: list) -> None:
        # T = argmin ||source T - target||, SVD-based, float64, no bias (as vwbench's lstsq)
        self.T, _, self.rank, _ = np.linalg.lstsq(source.astype(np.float64), target.astype(np.float64), rcond=None)

    def map(self, vectors: np.ndarray) -> np.ndarray:
        return vectors.astype(np.float64) @ self.T

    def describe(self) -> dict:
        return {"solver": "numpy.linalg.lstsq", "rank": int(self.rank)}
