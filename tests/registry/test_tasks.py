"""The repo's task registry: every task loads, the paper's settings are the paper's, names resolve."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.registry import TaskRegistry, list_tasks_table
from vwbench.registry.loader import default_tasks_dir, normalize_task_name
from vwbench.registry.schema import FAMILIES, KIND_METRICS, Hyperparameters

from .conftest import REPO_TASKS

PAIRS = [f"{s}->{t}" for s in FAMILIES for t in FAMILIES]
PAPER = ["imagenet", "dreambooth", "coco", "voc"]
MINI = ["synth-imagenet", "synth-dreambooth", "synth-coco", "synth-voc"]

# PROTOCOL.md, "Datasets and concepts": concept -> init word (the anchor word is the same).
PROTOCOL_CONCEPTS = {
    "imagenet": {
        "strawberry": "strawberry", "harp": "harp", "sturgeon": "sturgeon", "gorilla": "gorilla",
        "throne": "throne", "pelican": "pelican", "honeycomb": "honeycomb", "barrel": "barrel",
        "sombrero": "hat", "scuba diver": "scuba",
    },
    "dreambooth": {
        "cat2": "cat", "vase": "vase", "duck_toy": "duck", "candle": "candle",
        "colorful_sneaker": "sneaker", "backpack_dog": "backpack", "grey_sloth_plushie": "plush",
        "fancy_boot": "boot", "clock": "clock", "pink_sunglasses": "sunglasses",
    },
    "coco": {c: c for c in ["laptop", "scissors", "donut", "bear", "cup", "dog", "bottle", "umbrella", "cat", "remote"]},
    "voc": {c: c for c in ["airplane", "bicycle", "bird", "boat", "person", "train", "car", "cat", "horse", "cow"]},
}


def test_all_72_tasks_load(registry: TaskRegistry) -> None:
    tasks = registry.tasks()
    assert len(tasks) == 72
    keys = {(t.name, t.dataset.name) for t in tasks}
    assert keys == {(p, d) for p in PAIRS for d in PAPER + MINI}
    for t in tasks:
        assert t.tier == ("paper" if t.dataset.name in PAPER else "mini")
        assert t.version >= 1
        assert t.metric == t.target.metric == KIND_METRICS[t.target.kind][0]
        assert (t.judge is not None) == (t.target.family == "sd")
        assert t.source.kind == {"sd": "generation", "owlv2": "detection", "clip": "classification"}[t.source.family]


def test_datasets_and_tiers(registry: TaskRegistry) -> None:
    assert sorted(d.name for d in registry.datasets()) == sorted(PAPER + MINI)
    assert registry.tiers() == ["mini", "paper"]
    for d in registry.datasets():
        assert len(d.concepts) == 10
        assert d.tier == ("paper" if d.name in PAPER else "mini")
    for name in MINI:
        d = registry.dataset(name)
        assert d.loader == "synth"
        assert d.options["variant"] == name.removeprefix("synth-")


@pytest.mark.parametrize("name", PAPER)
def test_paper_concepts_are_the_protocols(registry: TaskRegistry, name: str) -> None:
    dataset = registry.dataset(name)
    assert {c.name: c.init_word for c in dataset.concepts} == PROTOCOL_CONCEPTS[name]
    assert all(c.anchor == c.init_word for c in dataset.concepts)
    assert dataset.loader == name


def test_mini_concepts_exist_in_the_synthetic_world(registry: TaskRegistry) -> None:
    from vwbench.data.synth import CATALOG

    for name in MINI:
        assert set(registry.dataset(name).concept_names) <= set(CATALOG)


def test_defaults_are_table_2(registry: TaskRegistry) -> None:
    table2 = Hyperparameters(lr=1e-4, betas=(0.9, 0.999), eps=1e-8, batch_size=8, steps=1000, n_vectors=4, images_per_concept=8, trials=10, seed=0)
    assert Hyperparameters() == table2
    for t in registry.tasks():
        assert t.eval.guidance_scale == 7.5
        assert t.dataset.heldout_per_concept >= 1
        if t.dataset.tier == "paper":
            assert t.hyperparameters == table2
            assert t.eval.inference_steps == 50
            assert t.eval.generations_per_word == 8
        else:  # the mini tier's shorter runs (tasks/models/mini.yaml settings)
            assert t.hyperparameters == table2.model_copy(update={"lr": 1e-3, "steps": 200, "trials": 3})
            assert (t.eval.inference_steps, t.eval.generations_per_word) == (20, 4)


def test_in_domain_tasks_default_to_identity(registry: TaskRegistry) -> None:
    for t in registry.tasks():
        assert t.in_domain == (t.source.family == t.target.family)
        assert t.default_transfer == ("identity" if t.in_domain else "lstsq")


def test_paper_checkpoints_and_pins(registry: TaskRegistry) -> None:
    models = registry.models("paper")
    assert models["sd"].checkpoint.hf_id == "stabilityai/stable-diffusion-2-1"
    assert models["owlv2"].checkpoint.hf_id == "google/owlv2-base-patch16-ensemble"
    assert models["clip"].checkpoint.hf_id == "apple/DFN2B-CLIP-ViT-L-14"
    assert (models["sd"].image_size, models["owlv2"].image_size, models["clip"].image_size) == (768, 960, 224)
    for family in ("sd", "owlv2", "clip", "judge"):
        assert models[family].checkpoint.pinned, family
    assert models["clip"].checkpoint.revision == "c50bc0f14d7ad435ae8adbde8b3277844b7b8b68"
    assert all(t.pinned for t in registry.tasks())
    for family, spec in registry.models("mini").items():
        assert spec.checkpoint.path == f"zoo/mini-{family}" and spec.checkpoint.manifest == "manifest.json"


def test_no_revision_is_made_up() -> None:
    """Every 40-hex revision in the tier files carries a comment saying where it was found."""
    text = (REPO_TASKS / "models" / "paper.yaml").read_text()
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if line.strip().startswith("revision:") and "main" not in line:
            context = "\n".join(lines[max(0, i - 4) : i])
            assert "Stated" in context or "stated" in context, line


@pytest.mark.parametrize(
    "spelling",
    ["sd->owlv2", "sd→owlv2", "SD -> OWLv2", " sd->owlv2 ", "sd to owlv2", "generation->detection", "sd-to-owlv2"],
)
def test_get_normalizes_task_names(registry: TaskRegistry, spelling: str) -> None:
    task = registry.get(spelling, "coco")
    assert task.name == "sd->owlv2" and task.dataset.name == "coco"


@pytest.mark.parametrize("spelling", ["synth-coco", "Synth_COCO", "SYNTH COCO"])
def test_get_normalizes_dataset_names(registry: TaskRegistry, spelling: str) -> None:
    assert registry.get("clip->sd", spelling).dataset.name == "synth-coco"


def test_dataset_aliases(registry: TaskRegistry) -> None:
    assert registry.get("clip->clip", "Pascal VOC").dataset.name == "voc"


def test_unknown_task_suggests(registry: TaskRegistry) -> None:
    with pytest.raises(UserError) as info:
        registry.get("sd->owl2", "coco")
    message = str(info.value)
    assert "unknown task 'sd->owl2'" in message and "did you mean 'sd->owlv2'" in message
    assert "\n" not in message


def test_a_task_cut_by_a_shell_redirect_says_to_quote_it(registry: TaskRegistry) -> None:
    with pytest.raises(UserError) as info:
        registry.get("sd-", "coco")  # what `--task sd->owlv2` leaves after bash's redirect
    message = str(info.value)
    assert "quote it (--task 'sd->TARGET')" in message and "\n" not in message


def test_unknown_dataset_suggests(registry: TaskRegistry) -> None:
    with pytest.raises(UserError) as info:
        registry.get("sd->sd", "synth-cocoo")
    assert "unknown dataset 'synth-cocoo'" in str(info.value)
    assert "did you mean 'synth-coco'" in str(info.value)


def test_normalize_task_name_keeps_unknown_parts() -> None:
    assert normalize_task_name("SD->Foo") == "sd->foo"
    assert normalize_task_name("classification → generation") == "clip->sd"


def test_list_tasks_table(registry: TaskRegistry) -> None:
    rows = list_tasks_table(registry)
    assert len(rows) == 72
    assert set(rows[0]) == {"task", "dataset", "tier", "source", "target", "metric", "version", "pinned"}
    json.dumps(rows)  # serializable for `vwbench ls --json`
    row = next(r for r in rows if r["task"] == "owlv2->clip" and r["dataset"] == "voc")
    assert row == {
        "task": "owlv2->clip", "dataset": "voc", "tier": "paper", "source": "owlv2", "target": "clip",
        "metric": "classification_accuracy", "version": 1, "pinned": True,
    }


def test_default_tasks_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("VWBENCH_TASKS_DIR", raising=False)
    assert default_tasks_dir() == REPO_TASKS
    monkeypatch.setenv("VWBENCH_TASKS_DIR", str(tmp_path))
    assert default_tasks_dir() == tmp_path
    with pytest.raises(UserError, match="no defaults.yaml"):
        TaskRegistry.from_dir()
    with pytest.raises(UserError, match="no tasks folder"):
        TaskRegistry.from_dir(tmp_path / "absent")


def test_kind_metrics_match_the_metrics_package() -> None:
    """``KIND_METRICS`` (the registry's copy, which cannot import torch) mirrors ``vwbench.metrics.METRICS``."""
    from vwbench.metrics import METRICS

    assert METRICS  # an empty table would make the comparison below vacuous
    assert {name: kind for kind, names in KIND_METRICS.items() for name in names} == {name: spec.kind for name, spec in METRICS.items()}


def test_listing_tasks_does_not_import_torch() -> None:
    code = (
        "import sys, vwbench.registry as r\n"
        "rows = r.list_tasks_table(r.TaskRegistry.from_dir())\n"
        "assert len(rows) == 72, len(rows)\n"
        "bad = [m for m in ('torch', 'vwbench.models', 'transformers', 'diffusers', 'open_clip', 'huggingface_hub') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    env = {k: v for k, v in os.environ.items() if k != "VWBENCH_TASKS_DIR"}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stderr


def test_a_missing_folder_from_the_environment_variable_is_named_as_its_cause(tmp_path, monkeypatch) -> None:
    """Telling a user to set VWBENCH_TASKS_DIR when that is what points nowhere would not help."""
    missing = tmp_path / "nonexist"
    monkeypatch.setenv("VWBENCH_TASKS_DIR", str(missing))
    with pytest.raises(UserError) as error:
        TaskRegistry.from_dir()
    assert str(error.value) == f"no tasks folder at {missing} (from $VWBENCH_TASKS_DIR); set it to the folder of task YAML files, or unset it for the built-in tasks"
    with pytest.raises(UserError, match=r"; pass --tasks-dir or set VWBENCH_TASKS_DIR to the folder of task YAML files$"):
        TaskRegistry.from_dir(missing)  # given as --tasks-dir: the variable is not to blame
