"""The typed task schema: what a benchmark task is, as pydantic v2 models.

A task is ``SOURCE->TARGET`` on a dataset: words are trained on the SOURCE model, carried into the
TARGET model's embedding space, and scored there by the TARGET's metric. The YAML files under
``tasks/`` are assembled into these models by :mod:`vwbench.registry.loader`.

Every model forbids unknown fields (``extra="forbid"``), so a typo in a YAML key is an error that
names the file and line, never a silently ignored setting. Models are frozen: one
:class:`ModelSpec` is shared by every task of its tier.

This module imports neither torch nor any model code (``vwbench ls`` must stay fast).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

from vwbench.errors import UserError

Family = Literal["sd", "owlv2", "clip"]
"""A model family: its registry name (``vwbench.registry.models.ADAPTERS`` maps it to code)."""

TaskKind = Literal["generation", "detection", "classification"]
"""What a model does with a word (the same strings as ``vwbench.models.base.TaskKind``)."""

FAMILIES: tuple[str, ...] = ("sd", "owlv2", "clip")
"""The families in the order tasks are listed (generation, detection, classification)."""

FAMILY_KIND: dict[str, str] = {"sd": "generation", "owlv2": "detection", "clip": "classification"}
"""The task kind of each family."""

KIND_METRICS: dict[str, tuple[str, ...]] = {
    "generation": ("generation_accuracy",),
    "detection": ("map", "map50"),
    "classification": ("classification_accuracy",),
}
"""Metric names per task kind, the first being the kind's headline metric. Mirrors
``vwbench.metrics.METRICS`` (which imports torch, so it is not imported here); a test keeps the
two in step."""

# Upper bounds of the integer settings. Each is far above what a task needs (the paper's Table 2: 1,000
# steps, 10 trials, batch 8, 4 vectors, 8 images per concept, 50 denoising steps) and far below
# what would run for days or ask for absurd memory: a value past one is a typo, refused with the
# file and line, before anything runs.
MAX_STEPS = 100_000  # word training steps: 100x the protocol's 1,000
MAX_TRIALS = 1_000  # words per concept: 100x the protocol's 10 (its CIs are over 100 trials)
MAX_BATCH_SIZE = 1_024  # images per training or evaluation batch: 128x the protocol's 8
# A word's vectors go into one prompt with the start and end tokens: no text encoder of the three
# families reads more than 77 tokens (CLIP, SD; OWLv2: 16), so a longer word can never fit.
MAX_N_VECTORS = 75
MAX_IMAGES_PER_CONCEPT = 10_000  # training or held-out images per concept: the largest shipped value is 200
MAX_GENERATIONS_PER_WORD = 1_000  # images generated per word at evaluation (default 8)
# Denoising steps at evaluation (protocol: 50): the SD schedulers are trained on 1,000 timesteps and
# refuse to sample with more.
MAX_INFERENCE_STEPS = 1_000
# Random seeds feed torch generators, which take a 64-bit seed: a larger one fails at evaluation,
# after the training ran.
MIN_SEED, MAX_SEED = -(2**63), 2**64 - 1

_HEX40 = re.compile(r"^[0-9a-f]{40}$")
_HF_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class _Strict(BaseModel):
    """Base of every schema model: unknown fields are errors, instances are immutable, and a float
    setting must be finite (YAML reads ``.inf`` and ``.nan`` as floats; no setting means either)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


S = TypeVar("S", bound=BaseModel)


def with_overrides(settings: S, overrides: Mapping[str, Any], options: Mapping[str, str] | None = None) -> S:
    """``settings`` with a run's command-line overrides applied (``{field: value}``; ``None``
    keeps the setting), checked against the same bounds as the task files: a bad value is a
    one-line :class:`UserError` naming its option (``--steps``, or ``options[field]`` where the
    option is named otherwise), raised before anything runs. (pydantic's
    ``model_copy(update=...)`` would take any value unchecked.)"""
    given = {name: value for name, value in overrides.items() if value is not None}
    try:
        return type(settings).model_validate({**settings.model_dump(), **given})
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else next(iter(given), "?")
        option = (options or {}).get(name, "--" + name.replace("_", "-"))
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UserError(f"{option} {given.get(name)}: {message}; give another {option} or leave it out (the task's setting)") from None


class CheckpointPin(_Strict):
    """Where a model's weights come from, pinned as tightly as is known.

    Exactly one of:

    * ``hf_id`` (``org/name`` on the Hugging Face hub) with ``revision``, a 40-hex commit id.
      ``revision: main`` (or none) is allowed while no commit is known, but then the pin is
      *unpinned* (:attr:`pinned` is false and ``vwbench ls`` says so).
    * ``path``: a checkpoint folder, relative to the ``vwbench`` package directory (the shipped
      mini zoo, e.g. ``zoo/mini-sd``) or absolute. ``manifest`` names the folder's sha256 manifest
      (``{"files": {relpath: sha256}}``); when named it must exist, and every file in it is
      verified before the checkpoint is used.

    ``upstream`` is documentation only: the checkpoint this one is a copy of, when the protocol
    names another repository with the same weights (``org/name@revision``).

    ``mirror`` (``org/name@revision``, a 40-hex commit) is another hub repository serving the same
    checkpoint, for when ``hf_id`` is no longer served: it is looked for where ``hf_id`` is not
    on disk, named in the fetch command, and recorded as what a run used.
    """

    hf_id: str | None = None
    revision: str | None = None
    path: str | None = None
    manifest: str | None = None
    upstream: str | None = None
    mirror: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> CheckpointPin:
        if (self.hf_id is None) == (self.path is None):
            raise ValueError("a checkpoint needs exactly one of 'hf_id' or 'path'")
        if self.hf_id is not None:
            if not _HF_ID.fullmatch(self.hf_id):
                raise ValueError(f"hf_id {self.hf_id!r} is not of the form 'org/name'")
            if self.manifest is not None:
                raise ValueError("'manifest' applies to 'path' checkpoints only")
        if self.path is not None and self.revision is not None:
            raise ValueError("'revision' applies to 'hf_id' checkpoints only")
        if self.mirror is not None:
            mirror_id, mirror_revision = self.mirror_source
            if self.hf_id is None:
                raise ValueError("'mirror' applies to 'hf_id' checkpoints only")
            if not (_HF_ID.fullmatch(mirror_id) and _HEX40.fullmatch(mirror_revision)):
                raise ValueError(f"mirror {self.mirror!r} is not of the form 'org/name@<40-hex commit>'")
        if self.manifest is not None and ("/" in self.manifest or self.manifest in ("", ".", "..")):
            raise ValueError(f"manifest {self.manifest!r} must be a file name inside the checkpoint folder")
        return self

    @property
    def pinned(self) -> bool:
        """True when the pin names exact bytes: a 40-hex commit, or a folder with a manifest."""
        if self.hf_id is not None:
            return bool(self.revision and _HEX40.fullmatch(self.revision))
        return self.manifest is not None

    @property
    def mirror_source(self) -> tuple[str, str]:
        """``(hf_id, revision)`` of ``mirror`` (``("", "")`` without one)."""
        mirror_id, _, revision = (self.mirror or "").partition("@")
        return mirror_id, revision

    @property
    def hub_sources(self) -> list[tuple[str, str]]:
        """``(hf_id, revision)`` to look for, the pinned repository first, then its mirror."""
        if self.hf_id is None:
            return []
        sources = [(self.hf_id, self.revision or "main")]
        if self.mirror is not None:
            sources.append(self.mirror_source)
        return sources

    @property
    def display(self) -> str:
        """``org/name@revision`` or the path, for messages and tables."""
        if self.hf_id is not None:
            return f"{self.hf_id}@{self.revision or 'main'}"
        return str(self.path)


class ModelSpec(_Strict):
    """One model of a tier: its family, checkpoint and the metric it is scored by as a target.

    ``kind`` follows from ``family`` (sd: generation, owlv2: detection, clip: classification) and
    ``metric`` defaults to the kind's headline metric. ``image_size`` and ``text_width`` describe
    the checkpoint (the paper's table of models) for readers of the task files; the adapters take
    both from the checkpoint's own config, never from here.
    """

    family: Family
    kind: TaskKind
    checkpoint: CheckpointPin
    metric: str
    image_size: int | None = Field(default=None, gt=0)
    text_width: int | None = Field(default=None, gt=0)
    description: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _fill_kind_and_metric(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("family") in FAMILY_KIND:
            kind = FAMILY_KIND[data["family"]]
            data = {"kind": kind, "metric": KIND_METRICS[kind][0], **data}
        return data

    @model_validator(mode="after")
    def _kind_and_metric(self) -> ModelSpec:
        expected = FAMILY_KIND[self.family]
        if self.kind != expected:
            raise ValueError(f"family {self.family!r} is a {expected} model, not {self.kind}")
        metrics = KIND_METRICS[expected]
        if self.metric not in metrics:
            raise ValueError(
                f"metric {self.metric!r} does not score {expected} models; use one of: {', '.join(metrics)}"
            )
        return self


class Hyperparameters(_Strict):
    """Word training settings (Trabucco et al. 2024, Table 2: the same for every model)."""

    # Adam moves every coordinate by about ``lr`` per step whatever the gradient's scale, while
    # token embeddings have coordinates of order 0.01-0.1 (Table 2: 1e-4; the mini tier: 1e-3).
    # An lr above 10 cannot train a word (and 1e30 overflows it to NaN): it is a typo, refused.
    lr: float = Field(default=1e-4, gt=0, le=10)
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = Field(default=1e-8, gt=0)
    batch_size: int = Field(default=8, ge=1, le=MAX_BATCH_SIZE)
    steps: int = Field(default=1000, ge=0, le=MAX_STEPS)
    n_vectors: int = Field(default=4, ge=1, le=MAX_N_VECTORS)
    images_per_concept: int = Field(default=8, ge=1, le=MAX_IMAGES_PER_CONCEPT)
    trials: int = Field(default=10, ge=1, le=MAX_TRIALS)
    seed: int = Field(default=0, ge=MIN_SEED, le=MAX_SEED)

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError("Adam betas must lie in [0, 1)")
        return value


class EvalSettings(_Strict):
    """How transferred words are evaluated on the target model.

    The prompt is the protocol's "a photo of {}" (``vwbench.models.base.PROMPT_TEMPLATE``) for
    training, evaluation and the judge alike, so it is not a setting.
    ``generations_per_word``, ``inference_steps`` and ``guidance_scale`` apply to generation
    targets; ``batch_size`` is the evaluation batch of every target.
    """

    generations_per_word: int = Field(default=8, ge=1, le=MAX_GENERATIONS_PER_WORD)
    inference_steps: int = Field(default=50, ge=1, le=MAX_INFERENCE_STEPS)
    # classifier-free guidance: 7.5 is diffusers' default and published scales stay far below 100;
    # beyond that the guidance term swamps the prediction (and huge values overflow to NaN images)
    guidance_scale: float = Field(default=7.5, ge=0, le=100)
    batch_size: int = Field(default=8, ge=1, le=MAX_BATCH_SIZE)


class TransferDefaults(_Strict):
    """The transfer method a task uses unless the run names another."""

    in_domain: str = "identity"
    cross_domain: str = "lstsq"


class ConceptSpec(_Strict):
    """A concept: its dataset label, the single-token word a trained word starts from, and the
    anchor word of the fracturing experiment (the init word when not given).

    In YAML a concept is a mapping, or just its name when the name is its own init word."""

    name: str = Field(min_length=1)
    init_word: str = Field(min_length=1)
    anchor_word: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_name(cls, value: Any) -> Any:
        if isinstance(value, str):
            return {"name": value, "init_word": value}
        return value

    @property
    def anchor(self) -> str:
        return self.anchor_word or self.init_word

    def to_concept(self) -> Any:
        """The :class:`vwbench.data.base.Concept` of this spec (imported lazily: it pulls PIL)."""
        from vwbench.data.base import Concept

        return Concept(self.name, self.init_word, self.anchor_word)


class SynthOptions(_Strict):
    """``options`` of the ``synth`` loader (``vwbench.data.synth``)."""

    variant: Literal["imagenet", "dreambooth", "coco", "voc"] = "coco"
    # Rendered on the CPU, several float arrays of image_size² each; 1024 is above every real
    # model's input (CLIP 224, SD 2.1 768, OWLv2 960) and the mini tier's 64, so a larger size is a
    # typo that would only exhaust memory (100000000 asks numpy for petabytes).
    image_size: int = Field(default=64, ge=16, le=1024)
    seed: int = 0


def _as_text(value: Any) -> Any:
    """YAML reads ``2017`` or a numeric folder name as an int; the loaders read them as text."""
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else value


class RealOptions(_Strict):
    """``options`` every real-dataset loader reads (``vwbench.data.real``)."""

    subdir: str | None = None  # folder under the data root (default: the dataset's name)
    seed: int = 0  # the seeded split order
    label_rule: Literal["largest_box"] = "largest_box"  # an image's label: the class of its largest box

    @field_validator("subdir", mode="before")
    @classmethod
    def _subdir_text(cls, value: Any) -> Any:
        return _as_text(value)


class CocoOptions(RealOptions):
    year: Literal["2017", "2014"] | None = None

    @field_validator("year", mode="before")
    @classmethod
    def _year_text(cls, value: Any) -> Any:
        return _as_text(value)


class DreamboothOptions(RealOptions):
    boxes: str | None = None  # the reviewed COCO file of `vwbench data box` (default: boxes.json in the dataset folder)


class VocOptions(RealOptions):
    names: dict[str, str] = Field(default_factory=dict)  # VOC's class name -> the concept name


class ImagenetOptions(RealOptions):
    synsets: dict[str, str] = Field(default_factory=dict)  # concept name -> WordNet id


DATASET_OPTIONS: dict[str, type[_Strict]] = {
    "synth": SynthOptions, "coco": CocoOptions, "voc": VocOptions, "imagenet": ImagenetOptions, "dreambooth": DreamboothOptions,
}
"""Loader name (as in ``vwbench.registry.models.DATASET_LOADERS``) -> the schema of its ``options``."""


class DatasetSpec(_Strict):
    """A dataset: its tier (which names the model checkpoints), the loader that builds its split,
    the loader's ``options`` (checked against :data:`DATASET_OPTIONS`; kept as written, so
    defaults never enter a hash), its concepts and how many held-out images each concept gets."""

    name: str = Field(min_length=1)
    tier: str = Field(min_length=1)
    loader: str = Field(min_length=1)
    options: dict[str, Any] = Field(default_factory=dict)
    concepts: list[ConceptSpec] = Field(min_length=2)
    heldout_per_concept: int = Field(ge=1, le=MAX_IMAGES_PER_CONCEPT)
    aliases: list[str] = Field(default_factory=list)
    description: str | None = None

    @field_validator("options")
    @classmethod
    def _known_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        schema = DATASET_OPTIONS.get(info.data.get("loader", ""))
        if schema is not None:
            try:
                schema.model_validate(value)
            except ValidationError as exc:
                first = exc.errors()[0]
                where = ".".join(str(p) for p in first["loc"])
                known = ", ".join(schema.model_fields)
                # option_loc lets the task loader point at the offending option's own file:line
                raise PydanticCustomError(
                    "dataset_option", "{where}: {msg} (the {loader} loader's options: {known})",
                    {"where": where, "msg": first["msg"], "loader": info.data["loader"], "known": known, "option_loc": tuple(first["loc"])},
                ) from None
        return value

    @field_validator("concepts")
    @classmethod
    def _unique(cls, value: list[ConceptSpec]) -> list[ConceptSpec]:
        seen: set[str] = set()
        for concept in value:
            if concept.name in seen:
                raise ValueError(f"concept {concept.name!r} is listed twice")
            seen.add(concept.name)
        return value

    @property
    def concept_names(self) -> list[str]:
        return [c.name for c in self.concepts]


class RegistryEntry:
    """What every registry entry (a word task, a study task) derives from its ``name``,
    ``dataset`` and ``checkpoints`` (each subclass defines them)."""

    @property
    def tier(self) -> str:
        return self.dataset.tier

    @property
    def key(self) -> str:
        """``NAME@dataset``: unique in a registry."""
        return f"{self.name}@{self.dataset.name}"

    @property
    def pinned(self) -> bool:
        """True when every checkpoint the entry loads is pinned to exact bytes."""
        return all(pin.pinned for pin in self.checkpoints)


class TaskSpec(RegistryEntry, _Strict):
    """One benchmark task: train on ``source``, transfer, evaluate on ``target`` over ``dataset``.

    ``judge`` is the classifier that labels generated images; it is set only when the target is a
    generation model. ``default_transfer`` is ``identity`` for in-domain tasks (``x->x``) and
    ``lstsq`` otherwise, unless the settings say another.
    """

    name: str
    version: int = Field(ge=1)
    source: ModelSpec
    target: ModelSpec
    dataset: DatasetSpec
    metric: str
    judge: ModelSpec | None = None
    hyperparameters: Hyperparameters
    eval: EvalSettings
    default_transfer: str
    in_domain: bool

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        expected = f"{self.source.family}->{self.target.family}"
        if self.name != expected:
            raise ValueError(f"task name {self.name!r} does not match its models ({expected})")
        if self.in_domain != (self.source.family == self.target.family):
            raise ValueError("in_domain must be true exactly when source and target are the same family")
        if self.metric != self.target.metric:
            raise ValueError(f"metric {self.metric!r} is not the target's metric {self.target.metric!r}")
        if (self.judge is not None) != (self.target.kind == "generation"):
            raise ValueError("a judge is required for generation targets and only for them")
        return self

    @property
    def checkpoints(self) -> list[CheckpointPin]:
        """Every checkpoint the task loads (source, target, and the judge where there is one)."""
        models = [self.source, self.target] + ([self.judge] if self.judge is not None else [])
        return [m.checkpoint for m in models]


# ---- file-level schemas: what each kind of YAML file under tasks/ may hold -----------------------


class SettingsFile(_Strict):
    """The settings every task starts from (``tasks/defaults.yaml``), complete.

    ``dataset`` holds defaults merged under every dataset file (e.g. ``heldout_per_concept``)."""

    version: int = Field(ge=1)
    hyperparameters: Hyperparameters
    eval: EvalSettings
    transfer: TransferDefaults = TransferDefaults()
    dataset: dict[str, Any] = Field(default_factory=dict)


class SettingsOverride(_Strict):
    """A partial settings layer (in a tier, dataset or suite file), deep-merged over the defaults.
    Its keys are checked when the merged settings are validated, against the file that set them."""

    version: int | None = Field(default=None, ge=1)
    hyperparameters: dict[str, Any] = Field(default_factory=dict)
    eval: dict[str, Any] = Field(default_factory=dict)
    transfer: dict[str, Any] = Field(default_factory=dict)


def _at(key: tuple[str, ...], message: str) -> PydanticCustomError:
    """A model-level check's error that the task loader reports at ``key``'s own file:line."""
    return PydanticCustomError("located", "{message}", {"message": message, "option_loc": key})


class TierFile(_Strict):
    """``tasks/models/<tier>.yaml``: the models of a tier, one per family, and the judge."""

    tier: str
    description: str | None = None
    models: dict[Family, ModelSpec]
    judge: ModelSpec
    settings: SettingsOverride = SettingsOverride()

    @model_validator(mode="after")
    def _complete(self) -> TierFile:
        # option_loc: the loader reports each at its own key's file:line, not the file's first line
        missing = [f for f in FAMILIES if f not in self.models]
        if missing:
            raise _at(("models",), f"tier {self.tier!r} has no model for: {', '.join(missing)}")
        for family, spec in self.models.items():
            if spec.family != family:
                raise _at(("models", family), f"models.{family} has family {spec.family!r}")
        if self.judge.kind != "classification":
            raise _at(("judge",), "the judge must be a classification model")
        return self


class DatasetFile(DatasetSpec):
    """``tasks/datasets/<name>.yaml``: a dataset, optionally with its own settings layer."""

    settings: SettingsOverride = SettingsOverride()

    def spec(self) -> DatasetSpec:
        return DatasetSpec(**self.model_dump(exclude={"settings"}))


class SuiteFile(_Strict):
    """``tasks/suites/<name>.yaml``: which datasets x which ordered pairs are tasks.

    ``pairs`` is ``all`` (the 9 ordered pairs) or a list of ``SOURCE->TARGET`` names. ``tasks``
    holds per-task settings layers keyed by ``SOURCE->TARGET`` (every dataset of the suite) or
    ``SOURCE->TARGET@dataset`` (one task)."""

    name: str
    description: str | None = None
    datasets: list[str] = Field(min_length=1)
    pairs: Literal["all"] | list[str] = Field(default="all", min_length=1)
    settings: SettingsOverride = SettingsOverride()
    tasks: dict[str, SettingsOverride] = Field(default_factory=dict)
