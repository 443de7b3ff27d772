"""Make ``import torchvision`` work next to a CPU-only torch build.

PyPI's torchvision wheels are CUDA builds. Next to a CPU-only torch their compiled ops library
does not load, and the first ``import torchvision`` fails with
``operator torchvision::nms does not exist``: at import torchvision registers fake kernels for
``torchvision::nms`` and ``torchvision::qnms``, which needs those op schemas to exist. open_clip,
transformers' image processors and diffusers' pipelines all import torchvision.

``ensure_torchvision_importable()`` declares the two schemas with ``torch.library`` only when
torchvision's compiled ops are absent; where they load natively it does nothing. It must run before
the first torchvision import (``vwbench.models`` calls it). vwbench itself never calls
``torchvision.ops.nms``; with the shim active that function still reports missing ops.
"""

from __future__ import annotations

import importlib.util
import sys
import threading

_lock = threading.Lock()
_done = False
_library = None  # the torch.library.Library must stay alive for the schemas to stay registered


def _native_ops_present() -> bool:
    import torch

    try:
        torch.ops.torchvision.nms  # noqa: B018 - raises if the op was never registered
        return True
    except (AttributeError, RuntimeError):
        return False


def _try_load_native_ops() -> None:
    """Load torchvision's compiled ops by path, without importing the torchvision package.

    Where torch and torchvision builds match this registers the real ops (and torchvision's own
    later load of the same library is a no-op); where they don't, loading fails and we fall back.
    """
    import glob
    import os

    import torch

    spec = importlib.util.find_spec("torchvision")  # top-level: does not import the package
    if spec is None or spec.origin is None:
        return
    for path in glob.glob(os.path.join(os.path.dirname(spec.origin), "_C*.so")):
        try:
            torch.ops.load_library(path)
        except (OSError, RuntimeError):
            pass


def ensure_torchvision_importable() -> None:
    """Declare torchvision's nms/qnms schemas if, and only if, its compiled ops are missing."""
    global _done, _library
    with _lock:
        if _done:
            return
        _done = True
        if "torchvision" in sys.modules or importlib.util.find_spec("torchvision") is None:
            return
        import torch

        _try_load_native_ops()
        if _native_ops_present():
            return

        lib = torch.library.Library("torchvision", "DEF")
        lib.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        lib.define("qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _library = lib
