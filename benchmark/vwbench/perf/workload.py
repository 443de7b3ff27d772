"""The word-training workload every training measurement of ``vwbench bench`` runs on.

Both sides of a comparison (vwbench's batched path and the naive reference loop) build the same
workload in their own process: the same model, dataset split, concepts, init words, word keys (so
the same per-word random streams, :func:`vwbench.training.trainer.word_generators`) and
hyperparameters.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from vwbench.errors import UserError

DTYPES: dict[str, torch.dtype] = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


@dataclass(frozen=True)
class WorkloadSpec:
    """What to train: ``family``'s in-domain task on ``dataset`` (its tier's checkpoint and
    hyperparameters), widened to ``concepts`` concepts, ``trials`` words per concept.

    ``tier="paper"`` replaces the checkpoint by the paper-tier architecture with random weights
    (:mod:`vwbench.perf.paper_tier`) and the hyperparameters by the paper's (Table 2)."""

    family: str
    dataset: str
    concepts: int | None = None  # None: the dataset's own
    trials: int | None = None  # None: the task's
    steps: int | None = None  # None: the task's
    tasks_dir: str | None = None
    device: str = "cpu"
    dtype: str = "fp32"
    tier: str | None = None  # None: the dataset's tier (its checkpoints); "paper": random paper-tier models
    compile: bool = False  # torch.compile the model's heavy training-step modules (ConceptModel.compile_step_modules)
    words_per_pass: int | None = None  # vwbench's batched run: words per forward/backward (None: as train_words chooses)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class Workload:
    """A loaded workload: everything :func:`vwbench.training.train_words` takes, plus the split."""

    spec: WorkloadSpec
    model: Any  # a ConceptModel
    split: Any  # a DatasetSplit
    data: Any  # TrainingData
    init: torch.Tensor  # [W, n, dim] float32 cpu
    word_concepts: list[int]
    word_keys: list[str]
    config: Any  # TrainConfig
    eval_settings: Any  # the task's EvalSettings
    facts: dict[str, Any] = field(default_factory=dict)

    @property
    def n_words(self) -> int:
        return int(self.init.shape[0])


def widen_concepts(dataset: Any, n: int | None) -> Any:
    """``dataset`` (a ``DatasetSpec``) with ``n`` concepts: its first ``n``, or, for the synthetic
    world, its own followed by the world's other categories in catalog order."""
    own = list(dataset.concepts)
    if n is None or n == len(own):
        return dataset
    if n < 2:
        raise UserError(f"--concepts {n}: training needs at least 2 concepts (each word's negatives are the others)")
    if n < len(own):
        return dataset.model_copy(update={"concepts": own[:n]})
    if dataset.loader != "synth":
        raise UserError(f"--concepts {n}: dataset {dataset.name} has {len(own)} concepts and is not synthetic, so it cannot be widened")
    from vwbench.data.synth.world import CATALOG
    from vwbench.registry.schema import ConceptSpec

    names = {c.name for c in own}
    extra = [ConceptSpec(name=name, init_word=name) for name in CATALOG if name not in names]
    if n > len(own) + len(extra):
        raise UserError(f"--concepts {n}: the synthetic world has only {len(own) + len(extra)} categories")
    return dataset.model_copy(update={"concepts": own + extra[: n - len(own)]})


def resolve_dtype(device: str, dtype: str) -> tuple[torch.device, torch.dtype]:
    """The torch device and weight dtype of ``--device`` / ``--dtype`` (half precision is GPU-only)."""
    if dtype not in DTYPES:
        raise UserError(f"unknown --dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    if device not in ("cpu", "cuda"):
        raise UserError(f"unknown --device {device!r}; use cpu, cuda or auto")
    if device == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for but no CUDA device is available; use --device cpu")
    if device == "cpu" and dtype != "fp32":
        raise UserError(f"--dtype {dtype} needs --device cuda (CPU runs in fp32)")
    return torch.device(device), DTYPES[dtype]


def load_workload(spec: WorkloadSpec) -> Workload:
    """Build the model, split, init words and config of ``spec``."""
    from vwbench.models.base import TrainingData
    from vwbench.registry import TaskRegistry, dataset_loader
    from vwbench.registry.schema import Hyperparameters
    from vwbench.training import TrainConfig, choose_init_words
    from vwbench.training.init_words import concept_exclusions

    device, dtype = resolve_dtype(spec.device, spec.dtype)
    registry = TaskRegistry.from_dir(Path(spec.tasks_dir) if spec.tasks_dir else None)
    task = registry.get(f"{spec.family}->{spec.family}", spec.dataset)
    dataset = widen_concepts(task.dataset, spec.concepts)
    hp = Hyperparameters() if spec.tier == "paper" else task.hyperparameters
    hp = hp.model_copy(update={k: v for k, v in {"steps": spec.steps, "trials": spec.trials}.items() if v is not None})
    if spec.tier == "paper":
        from vwbench.perf.paper_tier import build_paper_model

        model, checkpoint = build_paper_model(spec.family, device, dtype), f"paper-tier {spec.family} (random weights)"
    else:
        from vwbench.registry import resolve_checkpoint
        from vwbench.runner import load_resolved

        resolved = resolve_checkpoint(task.source.checkpoint)
        model = load_resolved(spec.family, resolved, device, dtype, task.source.checkpoint)
        checkpoint = resolved.name
    compiled = model.compile_step_modules() if spec.compile else []
    split = dataset_loader(dataset.loader)(dataset, images_per_concept=hp.images_per_concept)
    vocab = model.vocabulary()
    concepts, keys, init_words = [], [], []
    for index, concept in enumerate(split.concepts):
        try:
            words = choose_init_words(vocab, concept.init_word, hp.trials, exclude=concept_exclusions(split.concepts))
        except ValueError as exc:
            raise UserError(f"dataset {split.name}, concept {concept.name}: {exc}") from exc
        for trial, word in enumerate(words):
            concepts.append(index)
            keys.append(f"{concept.name}/{trial}")
            init_words.append(word)
    init = model.token_vectors(init_words).to("cpu", torch.float32)
    init = init[:, None, :].expand(-1, hp.n_vectors, -1).contiguous()
    config = TrainConfig(steps=hp.steps, lr=hp.lr, betas=tuple(hp.betas), eps=hp.eps, batch_size=hp.batch_size, seed=hp.seed)
    facts = {
        "checkpoint": checkpoint,
        "dataset": split.name,
        "concepts": len(split.concepts),
        "trials": hp.trials,
        "words": len(keys),
        "n_vectors": hp.n_vectors,
        "batch_size": hp.batch_size,
        "images_per_concept": hp.images_per_concept,
        "device": str(device),
        "dtype": spec.dtype,
        "compiled": compiled,
    }
    data = TrainingData(split.train, split.concept_names)
    return Workload(spec, model, split, data, init, concepts, keys, config, task.eval, facts)
