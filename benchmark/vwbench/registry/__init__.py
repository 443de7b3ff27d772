"""The task registry: typed task specs loaded from the YAML files under ``tasks/``.

>>> from vwbench.registry import TaskRegistry
>>> registry = TaskRegistry.from_dir()            # $VWBENCH_TASKS_DIR or the repo's tasks/
>>> task = registry.get("sd->owlv2", "synth-coco")  # also "SD → OWLv2", "generation->detection"
>>> task.source.checkpoint, task.metric, task.default_transfer

``adapter_class(family)`` and ``dataset_loader(name)`` turn registry names into code (lazily);
``resolve_checkpoint(pin)`` finds a pinned checkpoint on disk and hashes it.

This package never imports torch or ``vwbench.models`` at import time: ``vwbench ls`` lists every
task in a fraction of a second.
"""

from vwbench.registry.checkpoints import ResolvedCheckpoint, resolve_checkpoint
from vwbench.registry.loader import (
    TaskRegistry,
    default_tasks_dir,
    list_tasks_table,
    normalize_dataset_name,
    normalize_task_name,
)
from vwbench.registry.models import ADAPTERS, DATASET_LOADERS, adapter_class, dataset_loader
from vwbench.registry.schema import (
    CheckpointPin,
    ConceptSpec,
    DatasetSpec,
    EvalSettings,
    Hyperparameters,
    ModelSpec,
    TaskSpec,
)

__all__ = [
    "ADAPTERS",
    "DATASET_LOADERS",
    "CheckpointPin",
    "ConceptSpec",
    "DatasetSpec",
    "EvalSettings",
    "Hyperparameters",
    "ModelSpec",
    "ResolvedCheckpoint",
    "TaskRegistry",
    "TaskSpec",
    "adapter_class",
    "dataset_loader",
    "default_tasks_dir",
    "list_tasks_table",
    "normalize_dataset_name",
    "normalize_task_name",
    "resolve_checkpoint",
]
