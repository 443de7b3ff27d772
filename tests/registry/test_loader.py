"""YAML loading: errors name file and line, includes and settings layers merge (later wins)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.registry import TaskRegistry
from vwbench.registry.loader import merge, read_yaml

from .conftest import edit, line_of


def load_error(tasks: Path) -> str:
    with pytest.raises(UserError) as info:
        TaskRegistry.from_dir(tasks)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_typo_in_defaults_names_file_and_line(tasks_copy: Path) -> None:
    path = tasks_copy / "defaults.yaml"
    edit(path, "  steps: 1000", "  stpes: 1000")
    message = load_error(tasks_copy)
    assert f"defaults.yaml:{line_of(path, 'stpes')}: unknown field 'stpes'" in message
    assert "did you mean 'steps'" in message


def test_typo_in_a_tier_file(tasks_copy: Path) -> None:
    path = tasks_copy / "models" / "paper.yaml"
    edit(path, "    image_size: 960", "    image_sise: 960")
    message = load_error(tasks_copy)
    assert f"paper.yaml:{line_of(path, 'image_sise')}: unknown field 'image_sise'; did you mean 'image_size'?" in message


def test_typo_in_a_checkpoint_pin(tasks_copy: Path) -> None:
    path = tasks_copy / "models" / "mini.yaml"
    edit(path, "{path: zoo/mini-owlv2, manifest: manifest.json}", "{path: zoo/mini-owlv2, manifst: manifest.json}")
    message = load_error(tasks_copy)
    assert f"mini.yaml:{line_of(path, 'manifst')}: unknown field 'manifst'; did you mean 'manifest'?" in message


def test_typo_in_a_settings_layer_is_found_after_merging(tasks_copy: Path) -> None:
    """A typo'd key in a dataset's settings is only checked once merged over the defaults, and the
    error still points at the dataset file."""
    path = tasks_copy / "datasets" / "voc.yaml"
    path.write_text(path.read_text() + "settings:\n  eval:\n    inference_stesp: 10\n")
    message = load_error(tasks_copy)
    assert f"voc.yaml:{line_of(path, 'inference_stesp')}: unknown field 'inference_stesp'" in message


def test_typo_in_a_concept(tasks_copy: Path) -> None:
    path = tasks_copy / "datasets" / "imagenet.yaml"
    edit(path, "{name: sombrero, init_word: hat}", "{name: sombrero, init_wrod: hat}")
    message = load_error(tasks_copy)
    assert f"imagenet.yaml:{line_of(path, 'init_wrod')}: unknown field 'init_wrod'; did you mean 'init_word'?" in message


def test_bad_value_names_the_key(tasks_copy: Path) -> None:
    path = tasks_copy / "defaults.yaml"
    edit(path, "  lr: 1.0e-4", "  lr: -1")
    message = load_error(tasks_copy)
    assert f"defaults.yaml:{line_of(path, '  lr: -1')}: hyperparameters.lr:" in message
    assert "greater than 0" in message


def test_wrong_metric_for_a_family(tasks_copy: Path) -> None:
    path = tasks_copy / "models" / "mini.yaml"
    edit(path, "    metric: map\n", "    metric: classification_accuracy\n")
    message = load_error(tasks_copy)
    assert "mini.yaml:" in message and "does not score detection models" in message


def test_yaml_syntax_error_names_file_and_line(tasks_copy: Path) -> None:
    path = tasks_copy / "suites" / "mini.yaml"
    path.write_text("name: mini\ndatasets: [synth-coco\npairs: all\n")
    message = load_error(tasks_copy)
    assert "suites/mini.yaml:" in message and "YAML syntax error" in message


def test_unreadable_yaml_is_one_line(tasks_copy: Path) -> None:
    """Not UTF-8, or a recursive alias: errors naming the file, not tracebacks."""
    path = tasks_copy / "suites" / "mini.yaml"
    original = path.read_bytes()
    path.write_bytes(b"\xff\xfe")
    assert "suites/mini.yaml: not UTF-8 text" in load_error(tasks_copy)
    path.write_text("a: &a [*a, *a]\n")
    assert "suites/mini.yaml: nested too deeply" in load_error(tasks_copy)
    path.write_bytes(original)


def test_dataset_options_are_checked_against_their_loader(tasks_copy: Path) -> None:
    path = tasks_copy / "datasets" / "synth-voc.yaml"
    edit(path, "options: {variant: voc}", "options: {variant: voc, imagesize: 32}")
    message = load_error(tasks_copy)
    assert "synth-voc.yaml:" in message and "imagesize" in message and "the synth loader's options: variant, image_size, seed" in message
    edit(path, "options: {variant: voc, imagesize: 32}", "options: {variant: voc, image_size: abc}")
    assert "image_size" in load_error(tasks_copy)
    edit(path, "options: {variant: voc, image_size: abc}", "options: {variant: voc}")
    # every loader's own documented options load: COCO's year as YAML reads it (an int), DreamBooth's boxes file
    coco, dreambooth = tasks_copy / "datasets" / "coco.yaml", tasks_copy / "datasets" / "dreambooth.yaml"
    edit(coco, "  subdir: coco\n", "  subdir: coco\n  year: 2014\n")
    edit(dreambooth, "  subdir: dreambooth\n", "  subdir: dreambooth\n  boxes: reviewed.json\n")
    registry = TaskRegistry.from_dir(tasks_copy)
    assert registry.dataset("coco").options["year"] == 2014 and registry.dataset("dreambooth").options["boxes"] == "reviewed.json"
    edit(coco, "  year: 2014\n", "  year: 2015\n")
    assert "year" in load_error(tasks_copy)
    edit(coco, "  year: 2015\n", "  year: 2014\n")
    # a bad option set in an included file points at that file's line, not at the includer's
    shared = tasks_copy / "datasets" / "_synth.yaml"
    edit(shared, "  image_size: 64\n", "  imagesize: 64\n")
    line = 1 + shared.read_text().splitlines().index("  imagesize: 64")
    assert f"_synth.yaml:{line}: options: imagesize: Extra inputs" in load_error(tasks_copy)


def test_duplicate_key(tasks_copy: Path) -> None:
    path = tasks_copy / "suites" / "mini.yaml"
    path.write_text(path.read_text() + "pairs: all\n")
    message = load_error(tasks_copy)
    assert f"mini.yaml:{len(path.read_text().splitlines())}: duplicate key 'pairs'" in message


def test_unknown_dataset_in_a_suite(tasks_copy: Path) -> None:
    path = tasks_copy / "suites" / "paper.yaml"
    edit(path, "[imagenet, dreambooth, coco, voc]", "[imagenet, dreambooth, cocco, voc]")
    message = load_error(tasks_copy)
    assert f"paper.yaml:{line_of(path, 'cocco')}" in message and "did you mean 'coco'" in message


def test_unknown_tier_and_loader(tasks_copy: Path) -> None:
    path = tasks_copy / "datasets" / "coco.yaml"
    edit(path, "tier: paper", "tier: papr")
    assert f"coco.yaml:{line_of(path, 'papr')}: unknown tier 'papr'; did you mean 'paper'?" in load_error(tasks_copy)
    edit(path, "tier: papr", "tier: paper")
    edit(path, "loader: coco", "loader: cocoo")
    assert "unknown dataset loader 'cocoo'; did you mean 'coco'" in load_error(tasks_copy)


def test_a_task_defined_twice(tasks_copy: Path) -> None:
    (tasks_copy / "suites" / "extra.yaml").write_text("name: extra\ndatasets: [coco]\npairs: [clip->sd]\n")
    message = load_error(tasks_copy)
    assert "task clip->sd on coco is also defined at" in message


def test_include_and_defaults_merging(tasks_copy: Path) -> None:
    """Deep merge, later wins: defaults < include < file's own keys < suite < suite task."""
    datasets = tasks_copy / "datasets"
    (datasets / "_base.yaml").write_text("options: {image_size: 32, seed: 9}\nsettings:\n  hyperparameters: {steps: 7, trials: 2}\n")
    edit(datasets / "_synth.yaml", "tier: mini", "include: _base.yaml\ntier: mini")  # nested include
    edit(datasets / "_synth.yaml", "  seed: 0\n", "")  # so that the include's seed shows through
    edit(datasets / "synth-voc.yaml", "options: {variant: voc}", "options: {variant: voc, image_size: 48}\nsettings:\n  hyperparameters: {trials: 3}")
    suite = tasks_copy / "suites" / "mini.yaml"
    suite.write_text(
        suite.read_text()
        + "settings:\n  eval: {batch_size: 4}\n"
        + "tasks:\n  clip->sd: {version: 2}\n  'clip → sd@synth-voc': {version: 3, hyperparameters: {seed: 5}}\n"
    )
    registry = TaskRegistry.from_dir(tasks_copy)
    voc = registry.get("clip->sd", "synth-voc")
    assert voc.dataset.options == {"image_size": 48, "seed": 9, "variant": "voc"}  # the file's 48 wins over _synth's 64 and _base's 32
    assert registry.dataset("synth-coco").options == {"image_size": 64, "seed": 9, "variant": "coco"}  # _synth.yaml's 64 wins over _base's 32
    assert voc.hyperparameters.steps == 7  # from the included file's settings
    assert voc.hyperparameters.trials == 3  # the dataset file's own settings win over its include
    assert voc.hyperparameters.seed == 5 and voc.version == 3  # the per-task layer wins
    assert voc.hyperparameters.lr == 1e-3  # untouched keys keep the tier's settings (models/mini.yaml)
    assert voc.hyperparameters.betas == (0.9, 0.999)  # ... and the defaults below them
    assert voc.eval.batch_size == 4 and voc.eval.inference_steps == 20
    coco = registry.get("clip->sd", "synth-coco")
    assert coco.version == 2 and coco.hyperparameters.seed == 0 and coco.hyperparameters.trials == 2
    assert registry.get("sd->sd", "synth-coco").version == 1
    assert registry.get("clip->sd", "coco").eval.batch_size == 8  # another suite is untouched
    assert registry.dataset("synth-coco").heldout_per_concept == 25


def test_error_in_an_included_file_names_that_file(tasks_copy: Path) -> None:
    path = tasks_copy / "datasets" / "_synth.yaml"
    edit(path, "heldout_per_concept: 25", "heldout_per_concpt: 25")
    message = load_error(tasks_copy)
    assert f"_synth.yaml:{line_of(path, 'heldout_per_concpt')}: unknown field 'heldout_per_concpt'" in message


def test_include_cycle_and_missing_include(tasks_copy: Path) -> None:
    datasets = tasks_copy / "datasets"
    (datasets / "_a.yaml").write_text("include: _synth.yaml\n")
    edit(datasets / "_synth.yaml", "tier: mini", "include: _a.yaml\ntier: mini")
    assert "include cycle" in load_error(tasks_copy)
    edit(datasets / "_synth.yaml", "include: _a.yaml", "include: _nope.yaml")
    message = load_error(tasks_copy)
    assert f"_synth.yaml:{line_of(datasets / '_synth.yaml', '_nope')}: included file _nope.yaml not found" in message


def test_suite_with_a_subset_of_pairs(tasks_copy: Path) -> None:
    (tasks_copy / "suites" / "mini.yaml").write_text("name: mini\ndatasets: [synth-coco]\npairs: [sd->sd, 'CLIP → SD']\n")
    registry = TaskRegistry.from_dir(tasks_copy)
    assert len(registry.tasks()) == 36 + 2
    with pytest.raises(UserError, match=r"task owlv2->sd is not defined on dataset synth-coco \(its tasks: sd->sd, clip->sd\)"):
        registry.get("owlv2->sd", "synth-coco")


def test_merge_keeps_locations_of_the_last_writer(tmp_path: Path) -> None:
    a, b = tmp_path / "a.yaml", tmp_path / "b.yaml"
    a.write_text("x:\n  y: 1\n  z: 2\n")
    b.write_text("\n\nx:\n  y: 3\n")
    doc = merge(read_yaml(a), read_yaml(b))
    assert doc.data == {"x": {"y": 3, "z": 2}}
    assert (doc.loc(("x", "y")).file, doc.loc(("x", "y")).line) == (b, 4)
    assert (doc.loc(("x", "z")).file, doc.loc(("x", "z")).line) == (a, 3)
