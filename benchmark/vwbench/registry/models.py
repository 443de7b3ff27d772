"""The one place that maps registry names to code.

``ADAPTERS`` maps a model family (``sd``, ``owlv2``, ``clip``) to its adapter class and
``DATASET_LOADERS`` a dataset loader name (a dataset file's ``loader:``) to its function, each as
an ``"module:attribute"`` string. Nothing is imported until a class or function is asked for, so
listing tasks never imports torch. Adding a model family is one adapter file plus one line here
(and its YAML); no code elsewhere branches on a family name.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable
from typing import Any

from vwbench.errors import UserError

ADAPTERS: dict[str, str] = {
    "sd": "vwbench.models.sd:StableDiffusionAdapter",
    "owlv2": "vwbench.models.owlv2:Owlv2Adapter",
    "clip": "vwbench.models.clip:OpenClipAdapter",
}
"""Model family -> ``ConceptModel`` subclass (``vwbench.models.base``)."""

DATASET_LOADERS: dict[str, str] = {
    "synth": "vwbench.data.synth:load_synth_dataset",
    "coco": "vwbench.data.coco:load_coco_dataset",
    "voc": "vwbench.data.voc:load_voc_dataset",
    "imagenet": "vwbench.data.imagenet:load_imagenet_dataset",
    "dreambooth": "vwbench.data.dreambooth:load_dreambooth_dataset",
}
"""Loader name -> ``loader(spec: DatasetSpec, *, images_per_concept, data_root) -> DatasetSplit``."""

LOADERS_READING_DISK: frozenset[str] = frozenset({"coco", "voc", "imagenet", "dreambooth"})
"""The loaders that read their dataset under ``--data-root`` (the others generate theirs): a run
checks that folder before it loads anything."""


def _unknown(what: str, name: str, known: dict[str, str]) -> UserError:
    close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"unknown {what} {name!r}{hint} (known: {', '.join(known)})")


def _import_target(target: str, what: str) -> Any:
    """Import ``module:attribute``. A module or attribute that is not there (code not written yet,
    or a missing optional dependency) is a :class:`UserError`; other import failures propagate."""
    module_name, _, attribute = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise UserError(f"{what} is implemented by {target}, which cannot be imported: {exc}") from exc
    try:
        return getattr(module, attribute)
    except AttributeError as exc:
        raise UserError(f"{what} is implemented by {target}, but {module_name} has no {attribute!r}") from exc


def adapter_class(family: str) -> type:
    """The adapter class of a model family (imports its module, and with it torch)."""
    if family not in ADAPTERS:
        raise _unknown("model family", family, ADAPTERS)
    return _import_target(ADAPTERS[family], f"model family {family!r}")


def dataset_loader(name: str) -> Callable[..., Any]:
    """The loader function of a dataset loader name."""
    if name not in DATASET_LOADERS:
        raise _unknown("dataset loader", name, DATASET_LOADERS)
    return _import_target(DATASET_LOADERS[name], f"dataset loader {name!r}")
