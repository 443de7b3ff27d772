"""Hostile or broken task files: one-line errors naming the right file, never a traceback, a
runaway allocation or a setting that trains NaN words."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.registry.loader import read_yaml

from .conftest import edit, line_of
from .test_loader import load_error


def _alias_bomb(levels: int) -> str:
    """``levels`` lines, each a list of 9 aliases of the line before: 9**levels values."""
    lines = ['a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    names = "abcdefghijklmnop"
    for prev, name in zip(names, names[1:levels]):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_refused_before_it_is_expanded(tmp_path: Path) -> None:
    """A 'billion laughs' file is measured without expanding it: refused at once, naming the file."""
    path = tmp_path / "bomb.yaml"
    path.write_text(_alias_bomb(6))  # 9**6 = 531441 values from 6 short lines
    start = time.perf_counter()
    with pytest.raises(UserError, match=r"bomb.yaml: more than 100,000 values once its aliases") as info:
        read_yaml(path)
    assert "\n" not in str(info.value)
    assert time.perf_counter() - start < 5
    path.write_text(_alias_bomb(12))  # 9**12: would take terabytes if expanded
    with pytest.raises(UserError, match="aliases"):
        read_yaml(path)


def test_a_merge_key_bomb_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    lines = ["a: &a {x1: 1, x2: 2, x3: 3, x4: 4, x5: 5, x6: 6, x7: 7, x8: 8}"]
    for prev, name in zip("abcdefgh", "bcdefghi"):
        lines.append(f"{name}: &{name} {{<<: [{', '.join(['*' + prev] * 9)}]}}")
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(UserError, match="aliases"):
        read_yaml(path)


def test_ordinary_aliases_still_work(tmp_path: Path) -> None:
    path = tmp_path / "ok.yaml"
    path.write_text("a: &a {x: 1}\nb: *a\nc: {<<: *a, y: 2}\nd: &d [1, 2]\ne: [*d, *d]\n")
    assert read_yaml(path).data == {"a": {"x": 1}, "b": {"x": 1}, "c": {"x": 1, "y": 2}, "d": [1, 2], "e": [[1, 2], [1, 2]]}
    from vwbench.registry.loader import MAX_YAML_NODES

    assert MAX_YAML_NODES >= 100_000  # generous: the shipped files hold a few hundred values


def test_an_alias_bomb_in_defaults_is_one_line_for_the_registry(tasks_copy: Path) -> None:
    path = tasks_copy / "defaults.yaml"
    path.write_text(path.read_text() + _alias_bomb(7))
    assert "defaults.yaml: more than" in load_error(tasks_copy)


def test_a_nul_byte_is_one_line_with_its_line(tasks_copy: Path) -> None:
    path = tasks_copy / "defaults.yaml"
    lines = path.read_text().count("\n")
    path.write_text(path.read_text() + "seed: 1\x00\n")
    message = load_error(tasks_copy)  # asserts one line
    assert f"defaults.yaml:{lines + 1}: YAML error: unacceptable character #x0000" in message


@pytest.mark.skipif(not Path("/proc/self/environ").is_file(), reason="needs Linux /proc")
def test_including_a_binary_file_is_one_line(tasks_copy: Path) -> None:
    path = tasks_copy / "datasets" / "voc.yaml"
    path.write_text("include: /proc/self/environ\n" + path.read_text())
    message = load_error(tasks_copy)
    assert "environ" in message and "YAML error" in message


def test_an_empty_dataset_file_is_named_not_defaults(tasks_copy: Path) -> None:
    (tasks_copy / "datasets" / "synth-coco.yaml").write_text("")
    message = load_error(tasks_copy)
    assert "datasets/synth-coco.yaml:1: missing field 'name'" in message
    assert "defaults.yaml" not in message


def test_a_nameless_dataset_file_with_an_include_is_named(tasks_copy: Path) -> None:
    path = tasks_copy / "datasets" / "synth-coco.yaml"
    path.write_text("include: _synth.yaml\nconcepts: [cup, dog]\n")
    message = load_error(tasks_copy)
    assert "synth-coco.yaml:1: missing field 'name'" in message
    assert "defaults.yaml" not in message and "_synth.yaml" not in message


def test_an_extra_dataset_without_a_tier_is_named(tasks_copy: Path) -> None:
    (tasks_copy / "datasets" / "zzz.yaml").write_text("name: zzz\nloader: synth\nconcepts: [a, b]\n")
    message = load_error(tasks_copy)
    assert "datasets/zzz.yaml:1: missing field 'tier'" in message


@pytest.mark.parametrize("value", ["100000000", "1025"])
def test_a_huge_synthetic_image_size_is_refused(tasks_copy: Path, value: str) -> None:
    path = tasks_copy / "datasets" / "_synth.yaml"
    edit(path, "  image_size: 64", f"  image_size: {value}")
    message = load_error(tasks_copy)
    assert f"_synth.yaml:{line_of(path, 'image_size')}:" in message and "less than or equal to 1024" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("    lr: 1.0e-3", "    lr: .inf", "hyperparameters.lr: Input should be a finite number"),
        ("    lr: 1.0e-3", "    lr: .nan", "hyperparameters.lr: Input should be a finite number"),
        ("    lr: 1.0e-3", "    lr: 1e30", "hyperparameters.lr: Input should be less than or equal to 10"),
        ("    inference_steps: 20", "    inference_steps: 20\n    guidance_scale: .inf", "eval.guidance_scale: Input should be a finite number"),
        ("    inference_steps: 20", "    inference_steps: 20\n    guidance_scale: 1.0e30", "eval.guidance_scale: Input should be less than or equal to 100"),
        ("    trials: 3", "    trials: 3\n    eps: .inf", "hyperparameters.eps: Input should be a finite number"),
        ("    trials: 3", "    trials: 3\n    betas: [0.9, .nan]", "hyperparameters.betas"),
    ],
)
def test_non_finite_or_absurd_hyperparameters_are_refused(tasks_copy: Path, old: str, new: str, expected: str) -> None:
    path = tasks_copy / "models" / "mini.yaml"
    edit(path, old, new)
    message = load_error(tasks_copy)
    assert "models/mini.yaml:" in message and expected in message


def test_a_non_finite_study_setting_is_refused(tasks_copy: Path) -> None:
    from vwbench.registry.studies import StudyRegistry

    edit(tasks_copy / "studies" / "probe.yaml", "  lr: 1.0e-3", "  lr: .inf")
    with pytest.raises(UserError, match="finite number"):
        StudyRegistry.from_dir(tasks_copy)


# ---- includes that cannot be read: the error is at the include, naming the target as written ------


def test_an_unreadable_include_names_the_including_file_and_line(tasks_copy: Path, monkeypatch) -> None:
    """Not the resolved path of the target alone: the file and line that include it, and the
    include as written (a YAML error inside a readable target still names the target's own line)."""
    datasets = tasks_copy / "datasets"
    real_read_text = Path.read_text

    def read_text(self: Path, *args, **kwargs) -> str:
        if self.name == "_synth.yaml":  # as for a file without read permission (the tests may run as root)
            raise PermissionError(13, "Permission denied", str(self))
        return real_read_text(self, *args, **kwargs)

    monkeypatch.setattr(Path, "read_text", read_text)
    message = load_error(tasks_copy)
    line = line_of(datasets / "synth-coco.yaml", "include: _synth.yaml")
    assert f"datasets/synth-coco.yaml:{line}: included file _synth.yaml cannot be read (Permission denied); fix the include" in message


def test_an_include_of_an_unreadable_nested_include_names_the_middle_file(tasks_copy: Path) -> None:
    datasets = tasks_copy / "datasets"
    (datasets / "_loop.yaml").symlink_to("_loop.yaml")  # a symlink loop: no permission bits needed
    edit(datasets / "_synth.yaml", "tier: mini", "include: [_loop.yaml]\ntier: mini")
    message = load_error(tasks_copy)
    assert f"datasets/_synth.yaml:{line_of(datasets / '_synth.yaml', '_loop.yaml')}: included file _loop.yaml cannot be read" in message


@pytest.mark.parametrize(
    ("include", "problem"),
    [
        ("a" * 300 + ".yaml", "cannot be read (File name too long)"),  # an OSError from the check itself
        ("..", "is a folder, not a YAML file"),
        ('"a\\0b.yaml"', "'a\\x00b.yaml' is not a valid file name"),  # a NUL byte, escaped in the message
        ('""', "'' is an empty file name"),  # not "a folder" (the including file's own)
    ],
)
def test_an_unusable_include_is_one_line_at_the_include(tasks_copy: Path, include: str, problem: str) -> None:
    path = tasks_copy / "datasets" / "synth-coco.yaml"
    edit(path, "include: _synth.yaml", f"include: {include}")
    message = load_error(tasks_copy)
    assert f"datasets/synth-coco.yaml:{line_of(path, 'include:')}: included file " in message and problem in message


def test_a_symlink_loop_among_the_task_files_is_one_line(tasks_copy: Path) -> None:
    (tasks_copy / "datasets" / "zz.yaml").symlink_to("zz.yaml")
    assert "datasets/zz.yaml: a symbolic link loop" in load_error(tasks_copy)


@pytest.mark.parametrize(("value", "problem"), [("9" * 5000, "Exceeds the limit (4300 digits)"), ("2024-13-45", "month must be in 1..12")])
def test_a_scalar_python_cannot_build_is_one_line_with_its_line(tasks_copy: Path, value: str, problem: str) -> None:
    """PyYAML reads these as an int and a date, and Python then refuses them (a ValueError)."""
    path = tasks_copy / "models" / "mini.yaml"
    edit(path, "    steps: 200\n", f"    steps: {value}\n")
    message = load_error(tasks_copy)
    assert f"models/mini.yaml:{line_of(path, '    steps: ')}: cannot read " in message and problem in message
    assert "set_int_max_str_digits" not in message
