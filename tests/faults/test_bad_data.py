"""Bad inputs to ``vwbench run``: each is one line naming the file and the problem, exit code 2,
and nothing already computed is lost.

The on-disk dataset is a tiny COCO-format copy of the synthetic world (images rendered by the
synth loader, annotations exported with ``coco_format.to_coco``), read by the COCO loader, so
the checks run on the path real datasets take.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

from tests.faults.conftest import run_args, single, words_bytes
from tests.faults.test_kill_resume import assert_matches_reference


@pytest.fixture(scope="module")
def coco_world(fault_tasks, tmp_path_factory) -> tuple[Path, Path]:
    """(tasks folder with a ``coco-tiny`` dataset, data root holding it)."""
    from vwbench.data.coco_format import to_coco
    from vwbench.data.synth import load_synth_dataset
    from vwbench.registry import TaskRegistry

    root = tmp_path_factory.mktemp("coco-world")
    tasks = root / "tasks"
    shutil.copytree(fault_tasks, tasks)
    spec = TaskRegistry.from_dir(tasks).get("clip->clip", "synth-tiny").dataset
    split = load_synth_dataset(spec, images_per_concept=2)
    data = root / "data" / "cocotiny"
    for part, examples in (("train2017", split.train), ("val2017", split.heldout)):
        for ex in examples:
            target = data / part / f"{ex.image_id}.png"
            target.parent.mkdir(parents=True, exist_ok=True)
            ex.load_image().save(target)
        name = "train" if part == "train2017" else "val"
        (data / "annotations").mkdir(exist_ok=True)
        (data / "annotations" / f"instances_{name}2017.json").write_text(json.dumps(to_coco(examples)))
    dataset = {
        "name": "coco-tiny", "tier": "tiny", "loader": "coco", "heldout_per_concept": 2,
        "options": {"subdir": "cocotiny"}, "concepts": ["circle", "square", "triangle"],
    }
    (tasks / "datasets" / "coco-tiny.yaml").write_text(yaml.safe_dump(dataset))
    suite = yaml.safe_load((tasks / "suites" / "tiny.yaml").read_text())
    suite["datasets"].append("coco-tiny")
    (tasks / "suites" / "tiny.yaml").write_text(yaml.safe_dump(suite))
    return tasks, root / "data"


def _coco_args(tasks: Path, data_root: Path, out: Path) -> list[str]:
    args = run_args(tasks, out)
    args[args.index("synth-tiny")] = "coco-tiny"
    return [*args, "--data-root", str(data_root)]


def assert_one_line_error(outcome, *needles: str) -> str:
    assert outcome.rc == 2, outcome.log
    assert "Traceback" not in outcome.log, outcome.log
    errors = [line for line in outcome.log.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, outcome.log
    for needle in needles:
        assert needle in errors[0], errors[0]
    return errors[0]


def test_the_good_coco_copy_runs(zygote, coco_world, tmp_path):
    tasks, data = coco_world
    outcome = zygote.run(_coco_args(tasks, data, tmp_path / "runs"))
    assert outcome.rc == 0, outcome.log


def _broken_copy(data: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(data, copy)
    return copy


def _edit_annotations(data: Path, edit) -> Path:
    path = data / "cocotiny" / "annotations" / "instances_train2017.json"
    payload = json.loads(path.read_text())
    edit(payload)
    path.write_text(json.dumps(payload))
    return path


def _first_image(data: Path) -> Path:
    return sorted((data / "cocotiny" / "train2017").rglob("*.png"))[0]


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])


def _garbage(path: Path) -> None:
    path.write_bytes(b"this is not a png")


IMAGE_FAULTS = {"truncated image": (_truncate, "not a readable image"), "unreadable image": (_garbage, "not a readable image")}


@pytest.mark.parametrize("fault", sorted(IMAGE_FAULTS))
def test_bad_image_file(zygote, coco_world, tmp_path, fault):
    tasks, data = coco_world
    data = _broken_copy(data, tmp_path)
    image = _first_image(data)
    damage, message = IMAGE_FAULTS[fault]
    damage(image)
    out = tmp_path / "runs"
    assert_one_line_error(zygote.run(_coco_args(tasks, data, out)), str(image), message)
    assert not (out / "words").exists() and not (out / "results").exists()  # stopped before any training


def _box(payload: dict, bbox: list[float]) -> None:
    payload["annotations"][0]["bbox"] = bbox


ANNOTATION_FAULTS = {
    "negative box": (lambda p: _box(p, [-20.0, 2.0, 5.0, 5.0]), "outside"),
    "zero-area box": (lambda p: _box(p, [2.0, 2.0, 0.0, 5.0]), "zero-area"),
    "negative-size box": (lambda p: _box(p, [10.0, 10.0, -4.0, 5.0]), "zero-area"),
    "out-of-image box": (lambda p: _box(p, [20.0, 20.0, 30.0, 30.0]), "outside"),
    "unknown category": (lambda p: p["annotations"][0].update(category_id=99), "unknown category"),
    "malformed json": (None, "not valid JSON"),
}


@pytest.mark.parametrize("fault", sorted(ANNOTATION_FAULTS))
def test_bad_annotation_file(zygote, coco_world, tmp_path, fault):
    tasks, data = coco_world
    data = _broken_copy(data, tmp_path)
    edit, message = ANNOTATION_FAULTS[fault]
    if edit is None:
        path = data / "cocotiny" / "annotations" / "instances_train2017.json"
        path.write_text(path.read_text()[:-40])
    else:
        path = _edit_annotations(data, edit)
    assert_one_line_error(zygote.run(_coco_args(tasks, data, tmp_path / "runs")), str(path), message)


def test_image_size_that_disagrees_with_its_annotations(zygote, coco_world, tmp_path):
    tasks, data = coco_world
    data = _broken_copy(data, tmp_path)
    from PIL import Image

    image = _first_image(data)
    Image.open(image).resize((16, 16)).save(image)
    assert_one_line_error(zygote.run(_coco_args(tasks, data, tmp_path / "runs")), str(image), "16x16 pixels")


def test_concept_with_too_few_images(zygote, coco_world, tmp_path):
    tasks, data = coco_world
    outcome = zygote.run([*_coco_args(tasks, data, tmp_path / "runs")])
    assert outcome.rc == 0
    suite = tasks.parent / "tasks-more"
    shutil.copytree(tasks, suite)
    payload = yaml.safe_load((suite / "suites" / "tiny.yaml").read_text())
    payload["settings"]["hyperparameters"]["images_per_concept"] = 5
    (suite / "suites" / "tiny.yaml").write_text(yaml.safe_dump(payload))
    assert_one_line_error(zygote.run(_coco_args(suite, data, tmp_path / "runs2")), "concept 'circle'", "5 are required")
    shutil.rmtree(suite)


def test_duplicate_image_ids_in_a_split(tmp_path):
    """The shared check every loader's split passes: two images with one id."""
    from vwbench.data.base import DatasetSplit, Example
    from vwbench.data.synth import load_synth_dataset
    from vwbench.errors import DataError

    concepts = [SimpleNamespace(name=n, init_word=n, anchor_word=None) for n in ("circle", "square")]
    spec = SimpleNamespace(name="synth-x", heldout_per_concept=1, options={"variant": "voc", "image_size": 32}, concepts=concepts)
    split = load_synth_dataset(spec, images_per_concept=2)
    first = split.train[0]
    twin = Example(first.image_id, first.width, first.height, first.annotations, first.loader)
    bad = DatasetSplit(split.name, split.concepts, [*split.train, twin], split.heldout, split.manifest)
    with pytest.raises(DataError, match="appears twice"):
        bad.validate(2)


def test_checkpoint_whose_hash_does_not_match(zygote, fault_tasks, tmp_path):
    tasks = tmp_path / "tasks"
    shutil.copytree(fault_tasks, tasks)
    tier = yaml.safe_load((tasks / "models" / "tiny.yaml").read_text())
    folder = tmp_path / "clip"
    shutil.copytree(tier["models"]["clip"]["checkpoint"]["path"], folder)
    weights = single(folder, "*.safetensors")
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    tier["models"]["clip"]["checkpoint"]["path"] = str(folder)
    (tasks / "models" / "tiny.yaml").write_text(yaml.safe_dump(tier))
    assert_one_line_error(zygote.run(run_args(tasks, tmp_path / "runs")), weights.name, "sha256", "corrupted")


def test_truncated_safetensors_checkpoint_without_a_manifest(zygote, fault_tasks, tmp_path):
    tasks = tmp_path / "tasks"
    shutil.copytree(fault_tasks, tasks)
    tier = yaml.safe_load((tasks / "models" / "tiny.yaml").read_text())
    folder = tmp_path / "clip"
    shutil.copytree(tier["models"]["clip"]["checkpoint"]["path"], folder)
    (folder / "manifest.json").unlink()
    weights = single(folder, "*.safetensors")
    _truncate(weights)
    tier["models"]["clip"]["checkpoint"] = {"path": str(folder)}
    (tasks / "models" / "tiny.yaml").write_text(yaml.safe_dump(tier))
    assert_one_line_error(zygote.run(run_args(tasks, tmp_path / "runs")), str(folder), "cannot be loaded", "damaged")


def test_task_yaml_typo_names_file_and_line(zygote, fault_tasks, tmp_path):
    tasks = tmp_path / "tasks"
    shutil.copytree(fault_tasks, tasks)
    path = tasks / "suites" / "tiny.yaml"
    path.write_text(path.read_text().replace("steps:", "stpes:"))
    error = assert_one_line_error(zygote.run(run_args(tasks, tmp_path / "runs")), "stpes")
    assert f"{path.name}:" in error and any(ch.isdigit() for ch in error.split(path.name, 1)[1][:6]), error


def test_damaged_cached_words_and_result_are_recomputed(zygote, fault_tasks, references, tmp_path):
    out = tmp_path / "runs"
    args = run_args(fault_tasks, out)
    assert zygote.run(args).rc == 0
    words, result = single(out / "words", "*.safetensors"), single(out / "results", "*.json")
    data = bytearray(words.read_bytes())
    data[-2] ^= 0x10  # the file still parses; its checksum does not match
    words.write_bytes(bytes(data))
    result.write_text(result.read_text()[:100])  # torn
    rerun = zygote.run(args)
    assert rerun.rc == 0, rerun.log
    assert "ignoring a damaged result" in rerun.log and "saved trained words" in rerun.log
    assert_matches_reference(out, references["clip->clip"])
    assert words_bytes(words) == references["clip->clip"].words
