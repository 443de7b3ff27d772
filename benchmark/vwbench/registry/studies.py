"""Study tasks: the ``probe``, ``align`` and ``sae`` families, loaded from ``tasks/studies/*.yaml``.

A study file declares one family's tasks::

    family: probe                  # probe | align | sae (vwbench.studies.STUDY_FAMILIES)
    version: 1
    datasets: [synth-imagenet, imagenet]   # datasets of tasks/datasets/ the tasks run on
    encoders:                      # frozen encoders by name: a model of the dataset's tier
      clip: {model: clip}          #   (a key of tasks/models/<tier>.yaml's models, or judge)
      owlv2: {model: owlv2, pooling: mean-regions}
    pairs: [owlv2->clip]           # align only: SOURCE->TARGET encoder names
    transfer: lstsq                # align only: the default transfer method
    data: {train_per_concept: 16, heldout_per_concept: 16}
    settings: {...}                # the family's settings (typed below; unset = the code's default)
    tiers:                         # per-tier layers, deep-merged over data and settings
      mini: {settings: {epochs: 30}}

Each encoder (``probe``, ``sae``) or pair (``align``) becomes one task per dataset, named
``FAMILY:ENCODER`` or ``align:SOURCE->TARGET`` (``probe:clip``, ``align:owlv2->clip``); the
encoders' checkpoints are the dataset's tier models, so the mini tier runs on the shipped zoo and
the paper tier on the real checkpoints, with their pins. Unknown keys are errors naming the file
and line, as everywhere in ``tasks/``.

Like the rest of the registry, this module imports neither torch nor model code.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator

from vwbench.errors import UserError
from vwbench.registry.loader import Doc, TaskRegistry, _display, _FileCache, _located, _suggest, merge, validate
from vwbench.registry.schema import MAX_IMAGES_PER_CONCEPT, MAX_SEED, MIN_SEED, CheckpointPin, DatasetSpec, ModelSpec, RegistryEntry, _Strict
from vwbench.studies import PAIRED_FAMILIES, STUDY_FAMILIES

Pooling = Literal["image-embedding", "mean-regions"]
"""How an encoder turns an image into one vector (``vwbench.studies.encoders.POOLINGS``):
``image-embedding`` is the model's own image embedding (CLIP's projected, normalized feature);
``mean-regions`` averages a detector's per-region features (OWLv2's image-embedder grid)."""


# Upper bounds of the studies' sizes: far above the shipped values (in the comments) and far below
# what would run for days or ask for absurd memory, so a value past one is a typo.
MAX_WIDTH = 65_536  # a probe's hidden width (2,048)
MAX_ROWS_PER_BATCH = 65_536  # probe and SAE minibatch rows (1,024)
MAX_EPOCHS = 10_000  # probe epochs (60)
MAX_EMBED_BATCH = 4_096  # images per encoder call (64)
MAX_OPTIMIZER_STEPS = 1_000_000  # align's probe (100) and an SAE's (paper tier: 20,000)
MAX_DICTIONARY = 2**18  # SAE concepts: 42x the paper tier's 8 x 768
MAX_EXPANSION = 64.0  # SAE concepts per embedding dimension (paper tier: 8), a memory multiplier
MAX_SAE_SEEDS = 100  # each seed trains the whole sweep again (3)
MAX_REPORTED_ROWS = 10_000  # rows a study reports, e.g. top bridging pairs (10)
MAX_CAPTION_OBJECTS = 100  # objects a caption names (3); CLIP reads 77 tokens of it anyway
# probe and sae seed numpy generators, which refuse negative seeds, and torch's, which take 64 bits
StudySeed = Annotated[int, Field(ge=0, le=MAX_SEED)]


class EncoderRef(_Strict):
    """A frozen encoder: a model of the dataset's tier and how its images are pooled."""

    model: str = Field(min_length=1)
    pooling: Pooling = "image-embedding"


class StudyData(_Strict):
    """Which images a study uses. ``train_per_concept`` images per concept come from the dataset's
    training split (the loader's ``images_per_concept``), ``heldout_per_concept`` from its held-out
    split (``None``: the dataset's own number). ``caption_objects``: for image-text pairs (``sae``),
    a caption names up to this many of the image's objects, largest first."""

    train_per_concept: int | None = Field(default=None, ge=1, le=MAX_IMAGES_PER_CONCEPT)
    heldout_per_concept: int | None = Field(default=None, ge=1, le=MAX_IMAGES_PER_CONCEPT)
    caption_objects: int = Field(default=3, ge=1, le=MAX_CAPTION_OBJECTS)


# ---- family settings (typed; ``None`` keeps the compute module's default) -----------------------


class ProbeSettingsSpec(_Strict):
    """``vwbench.studies.probe.ProbeSettings`` plus the split and embedding batch of ``run_probes``
    / ``build_probe_features``."""

    hidden: int | None = Field(default=None, ge=1, le=MAX_WIDTH)
    dropout: float | None = Field(default=None, ge=0.0, lt=1.0)
    lr: float | None = Field(default=None, gt=0)
    batch_size: int | None = Field(default=None, ge=1, le=MAX_ROWS_PER_BATCH)
    epochs: int | None = Field(default=None, ge=1, le=MAX_EPOCHS)
    weight_decay: float | None = Field(default=None, ge=0)
    seed: StudySeed | None = None
    test_fraction: float | None = Field(default=None, gt=0.0, lt=1.0)
    embed_batch_size: int | None = Field(default=None, ge=1, le=MAX_EMBED_BATCH)


class AlignSettingsSpec(_Strict):
    """``vwbench.studies.align.AlignSettings``."""

    prompt: str | None = None
    probe_l2: float | None = Field(default=None, ge=0)
    probe_steps: int | None = Field(default=None, ge=1, le=MAX_OPTIMIZER_STEPS)
    seed: int | None = Field(default=None, ge=MIN_SEED, le=MAX_SEED)  # only seeds torch

    @field_validator("prompt")
    @classmethod
    def _one_slot(cls, value: str | None) -> str | None:
        if value is not None and value.count("{}") != 1:
            raise ValueError("the prompt needs exactly one '{}' where the class name goes")
        return value


class SaeSettingsSpec(_Strict):
    """``vwbench.studies.sae.SaeSettings``."""

    kinds: list[Literal["topk", "relu_l1"]] | None = Field(default=None, min_length=1)
    expansion: float | None = Field(default=None, gt=0, le=MAX_EXPANSION)
    n_concepts: int | None = Field(default=None, ge=3, le=MAX_DICTIONARY)
    topk_levels: list[int] | None = Field(default=None, min_length=1)
    l1_levels: list[float] | None = Field(default=None, min_length=1)
    steps: int | None = Field(default=None, ge=1, le=MAX_OPTIMIZER_STEPS)
    batch_size: int | None = Field(default=None, ge=1, le=MAX_ROWS_PER_BATCH)
    lr: float | None = Field(default=None, gt=0)
    final_lr_fraction: float | None = Field(default=None, gt=0, le=1)
    warmup_fraction: float | None = Field(default=None, ge=0, lt=1)
    clip_grad: float | None = Field(default=None, gt=0)
    n_seeds: int | None = Field(default=None, ge=2, le=MAX_SAE_SEEDS)
    seed: StudySeed | None = None
    center: bool | None = None
    reference_kind: Literal["topk", "relu_l1"] | None = None
    reference_level: float | None = None
    unimodal_threshold: float | None = Field(default=None, gt=0.5, lt=1.0)
    top_bridges: int | None = Field(default=None, ge=1, le=MAX_REPORTED_ROWS)
    bridge_include_self: bool | None = None


FAMILY_SETTINGS: dict[str, type[_Strict]] = {"probe": ProbeSettingsSpec, "align": AlignSettingsSpec, "sae": SaeSettingsSpec}
"""The typed settings of each study family (a test keeps them in step with the dataclasses)."""


# ---- files and resolved specs ------------------------------------------------------------------


class StudyLayer(_Strict):
    """A per-tier layer of a study file (deep-merged over the file's ``data`` and ``settings``)."""

    data: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)


class StudyFile(_Strict):
    """``tasks/studies/<family>.yaml`` (see the module docstring)."""

    family: str
    version: int = Field(default=1, ge=1)
    description: str | None = None
    datasets: list[str] = Field(min_length=1)
    encoders: dict[str, EncoderRef] = Field(min_length=1)
    pairs: list[str] = Field(default_factory=list)
    transfer: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)
    settings: dict[str, Any] = Field(default_factory=dict)
    tiers: dict[str, StudyLayer] = Field(default_factory=dict)

    @field_validator("family")
    @classmethod
    def _known_family(cls, value: str) -> str:
        if value not in STUDY_FAMILIES:
            close = difflib.get_close_matches(value, list(STUDY_FAMILIES), n=1, cutoff=0.5)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise ValueError(f"unknown study family {value!r}{hint} (known: {', '.join(STUDY_FAMILIES)})")
        return value

    @field_validator("encoders")
    @classmethod
    def _names(cls, value: dict[str, EncoderRef]) -> dict[str, EncoderRef]:
        for name in value:
            if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]*", name):
                raise ValueError(f"encoder name {name!r}: use lower-case letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _pairs_only_for_paired(self) -> StudyFile:
        paired = self.family in PAIRED_FAMILIES
        if paired and not self.pairs:
            raise ValueError(f"{self.family} studies need 'pairs' (SOURCE->TARGET encoder names)")
        if not paired and (self.pairs or self.transfer):
            raise ValueError(f"'pairs' and 'transfer' apply to paired studies ({', '.join(PAIRED_FAMILIES)}), not {self.family}")
        return self


class StudyEncoder(_Strict):
    """One encoder of a study task: its name in the study, its role (``encoder``, or ``source`` /
    ``target`` in a paired study), the tier's model and the pooling."""

    name: str
    role: Literal["encoder", "source", "target"]
    model: ModelSpec
    pooling: Pooling


class StudySpec(RegistryEntry, _Strict):
    """One study task on one dataset, fully resolved.

    ``settings`` holds only the keys the YAML set (the compute module's defaults fill the rest);
    ``data`` has its numbers resolved against the dataset and the defaults."""

    family: str
    name: str  # probe:clip, align:owlv2->clip
    version: int
    description: str | None = None
    dataset: DatasetSpec
    encoders: list[StudyEncoder]
    data: StudyData
    settings: dict[str, Any]
    transfer: str | None = None

    @property
    def checkpoints(self) -> list[CheckpointPin]:
        return [e.model.checkpoint for e in self.encoders]

    def encoder(self, role: str) -> StudyEncoder:
        return next(e for e in self.encoders if e.role == role)


# ---- names -------------------------------------------------------------------------------------

_ARROW = re.compile(r"\s*(?:->|→|⟶|=>|-to-|\bto\b)\s*")


def is_study_task(name: str) -> bool:
    """True for ``FAMILY:...`` names (``probe:clip``); word tasks (``sd->clip``) have no colon."""
    return ":" in name


def normalize_study_name(name: str) -> str:
    """``family:encoder`` / ``family:source->target`` in canonical form (lower case, no spaces,
    ``->`` as the arrow)."""
    family, _, rest = name.strip().lower().partition(":")
    rest = _ARROW.sub("->", rest.strip())
    return f"{family.strip()}:{rest.replace(' ', '')}"


# ---- the registry ------------------------------------------------------------------------------


class StudyRegistry:
    """Every study task defined under a tasks folder's ``studies/`` (none when it has no such
    folder). Datasets and tier models come from the folder's :class:`TaskRegistry`."""

    def __init__(self, studies: list[StudySpec], tasks: TaskRegistry) -> None:
        self._studies = studies
        self.tasks = tasks
        self._by_key = {(s.name, s.dataset.name): s for s in studies}

    @classmethod
    def from_dir(cls, tasks_dir: Path | str | None = None, tasks: TaskRegistry | None = None) -> StudyRegistry:
        tasks = tasks or TaskRegistry.from_dir(tasks_dir)
        return cls(_build(tasks), tasks)

    def studies(self) -> list[StudySpec]:
        return list(self._studies)

    def families(self) -> list[str]:
        return [f for f in STUDY_FAMILIES if any(s.family == f for s in self._studies)]

    def get(self, name: str, dataset: str) -> StudySpec:
        """The study task ``name`` on ``dataset``; unknown names are a :class:`UserError` with
        the closest known names."""
        canonical = normalize_study_name(name)
        family, _, rest = canonical.partition(":")
        if family not in STUDY_FAMILIES:
            raise _suggest("study family", family, STUDY_FAMILIES, extra="; a study task is FAMILY:ENCODER, e.g. probe:clip or align:owlv2->clip")
        names = list(dict.fromkeys(s.name for s in self._studies if s.family == family))
        if not names:
            raise UserError(f"no {family} study tasks are defined (no tasks/studies/*.yaml with family: {family} under {_display(self.tasks.root)})")
        if canonical not in names:
            what = "pair" if family in PAIRED_FAMILIES else "encoder"
            known = [n.partition(":")[2] for n in names]
            raise _suggest(f"{family} {what}", rest, known, extra=f"; use {family}:{known[0]}")
        ds = self.tasks.dataset(dataset)
        spec = self._by_key.get((canonical, ds.name))
        if spec is None:
            defined = sorted({s.dataset.name for s in self._studies if s.name == canonical})
            raise UserError(f"study {canonical} is not defined on dataset {ds.name} (its datasets: {', '.join(defined)})")
        return spec

    def __iter__(self):
        return iter(self._studies)

    def __len__(self) -> int:
        return len(self._studies)


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml") and not p.name.startswith(("_", ".")))


def _build(tasks: TaskRegistry) -> list[StudySpec]:
    files = _FileCache()
    specs: list[StudySpec] = []
    seen: dict[tuple[str, str], str] = {}
    for path in _yaml_files(Path(tasks.root) / "studies"):
        doc = files.load(path)
        study = validate(StudyFile, doc)
        for key in study.tiers:
            if key not in tasks.tiers():
                raise _located(doc, ("tiers", key), _suggest("tier", key, tasks.tiers()))
        names = _task_names(study, doc)
        for i, dataset_name in enumerate(study.datasets):
            try:
                dataset = tasks.dataset(dataset_name)
            except UserError as exc:
                raise _located(doc, ("datasets", i), exc) from None
            models = tasks.models(dataset.tier)
            layer = doc.sub("tiers").sub(dataset.tier)
            data_doc = merge(doc.sub("data"), layer.sub("data"))
            settings_doc = merge(doc.sub("settings"), layer.sub("settings"))
            data = validate(StudyData, data_doc)
            settings = validate(FAMILY_SETTINGS[study.family], settings_doc)
            for task_name, roles in names:
                encoders = []
                for role, encoder_name in roles:
                    ref = study.encoders[encoder_name]
                    if ref.model not in models:
                        raise _located(doc, ("encoders", encoder_name, "model"), _suggest(f"model of tier {dataset.tier}", ref.model, models))
                    encoders.append(StudyEncoder(name=encoder_name, role=role, model=models[ref.model], pooling=ref.pooling))
                where = doc.loc(("datasets", i))
                if (task_name, dataset.name) in seen:
                    raise UserError(f"{where}: study {task_name} on {dataset.name} is also defined at {seen[(task_name, dataset.name)]}")
                seen[(task_name, dataset.name)] = str(where)
                specs.append(StudySpec(
                    family=study.family, name=task_name, version=study.version, description=study.description, dataset=dataset,
                    encoders=encoders, data=_resolve_data(data, dataset), settings=settings.model_dump(exclude_none=True),
                    transfer=study.transfer,
                ))
    return specs


def _task_names(study: StudyFile, doc: Doc) -> list[tuple[str, list[tuple[str, str]]]]:
    """``(task name, [(role, encoder name), ...])`` for each task of a study file."""
    if study.family not in PAIRED_FAMILIES:
        return [(f"{study.family}:{name}", [("encoder", name)]) for name in study.encoders]
    out = []
    for i, raw in enumerate(study.pairs):
        parts = _ARROW.split(raw.strip().lower(), maxsplit=1)
        if len(parts) != 2:
            raise UserError(f"{doc.loc(('pairs', i))}: pair {raw!r} is not SOURCE->TARGET")
        for part in parts:
            if part not in study.encoders:
                raise _located(doc, ("pairs", i), _suggest("encoder", part, study.encoders, extra=" (pairs name encoders of this file)"))
        if parts[0] == parts[1]:
            raise UserError(f"{doc.loc(('pairs', i))}: pair {raw!r} maps an encoder onto itself")
        out.append((f"{study.family}:{parts[0]}->{parts[1]}", [("source", parts[0]), ("target", parts[1])]))
    return out


DEFAULT_TRAIN_PER_CONCEPT = 8  # the protocol's training images per concept


def _resolve_data(data: StudyData, dataset: DatasetSpec) -> StudyData:
    return data.model_copy(update={
        "train_per_concept": data.train_per_concept or DEFAULT_TRAIN_PER_CONCEPT,
        "heldout_per_concept": data.heldout_per_concept or dataset.heldout_per_concept,
    })


def list_studies_table(registry: StudyRegistry) -> list[dict[str, Any]]:
    """One row per study task for ``vwbench ls --studies``: task, family, dataset, tier,
    encoders (name=checkpoint), version, pinned."""
    return [
        {
            "task": s.name,
            "family": s.family,
            "dataset": s.dataset.name,
            "tier": s.tier,
            "encoders": {e.name: e.model.checkpoint.display for e in s.encoders},
            "version": s.version,
            "pinned": s.pinned,
        }
        for s in registry.studies()
    ]
