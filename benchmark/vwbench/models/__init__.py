"""Model adapters: one interface (:class:`ConceptModel`) over diffusers SD, transformers OWLv2 and
open_clip CLIP. Concrete adapters are found through ``vwbench.registry.models``."""

from vwbench.compat.torchvision_ops import ensure_torchvision_importable

ensure_torchvision_importable()

from vwbench.models.base import ConceptModel, EvalContext, TrainingData, Vocabulary  # noqa: E402

__all__ = ["ConceptModel", "EvalContext", "TrainingData", "Vocabulary"]
