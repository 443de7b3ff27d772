"""Task and study YAML files with mistakes (README "Tasks as YAML": unknown keys are errors that
name the file and line; "Studies": typed, file:line errors). Each case edits one file of a copy
of the repository's tasks/ and expects one line naming FILE:LINE, the problem and the fix."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.registry import TaskRegistry
from vwbench.registry.studies import StudyRegistry

REPO_TASKS = Path(__file__).resolve().parents[1] / "tasks"


@pytest.fixture
def tasks(tmp_path: Path, monkeypatch) -> Path:
    """A writable copy of tasks/, with the working directory above it (errors show tasks/...)."""
    dest = tmp_path / "tasks"
    shutil.copytree(REPO_TASKS, dest)
    monkeypatch.chdir(tmp_path)
    return dest


def _replace(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert text.count(old) == 1, (old, path)
    path.write_text(text.replace(old, new))


def _task_error(tasks: Path) -> str:
    with pytest.raises(UserError) as info:
        registry = TaskRegistry.from_dir(tasks)
        list(registry.tasks())
        registry.suite("mini")
    message = str(info.value)
    assert "\n" not in message
    return message


WORD_TASK_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    ("suite-is-a-list", lambda t: (t / "suites" / "mini.yaml").write_text("- a\n- b\n"),
     "tasks/suites/mini.yaml:1: expected a mapping of settings at the top of the file"),
    ("include-a-number", lambda t: _replace(t / "datasets" / "synth-coco.yaml", "include: _synth.yaml", "include: 5"),
     "tasks/datasets/synth-coco.yaml:2: 'include' takes a file name or a list of file names"),
    ("tier-name-mismatch", lambda t: _replace(t / "models" / "mini.yaml", "tier: mini", "tier: tiny"),
     "tasks/models/mini.yaml:5: tier 'tiny' must match its file name (mini)"),
    ("no-tier-files", lambda t: [p.unlink() for p in (t / "models").glob("*.yaml")],
     "tasks/models: no tier files (models/<tier>.yaml)"),
    ("dataset-name-mismatch", lambda t: _replace(t / "datasets" / "synth-coco.yaml", "name: synth-coco", "name: synth-cocoa"),
     "tasks/datasets/synth-coco.yaml:3: dataset name 'synth-cocoa' must match its file name (synth-coco)"),
    ("complex-mapping-key", lambda t: (t / "suites" / "mini.yaml").write_text("? [a, b]\n: 1\n" + (REPO_TASKS / "suites" / "mini.yaml").read_text()),
     "tasks/suites/mini.yaml:1: a mapping key must be a plain scalar"),
]


@pytest.mark.parametrize(("label", "mutate", "expected"), WORD_TASK_CASES, ids=[c[0] for c in WORD_TASK_CASES])
def test_task_file_mistakes_are_one_located_line(tasks: Path, label: str, mutate, expected: str) -> None:
    mutate(tasks)
    assert _task_error(tasks) == expected


def test_a_suite_pair_no_family_has_suggests_the_close_ones(tasks: Path) -> None:
    _replace(tasks / "suites" / "mini.yaml", "pairs: all", "pairs: [sd->sd, sd->dalle]")
    message = _task_error(tasks)
    assert message.startswith("tasks/suites/mini.yaml:5: unknown task 'sd->dalle'; did you mean 'sd->sd'")
    assert message.endswith("(known: sd->sd, sd->owlv2, sd->clip, owlv2->sd, owlv2->owlv2, owlv2->clip, clip->sd, clip->owlv2, clip->clip)")


def test_the_cli_reports_a_task_file_mistake_as_one_line(tasks: Path) -> None:
    _replace(tasks / "models" / "mini.yaml", "tier: mini", "tier: tiny")
    res = CliRunner().invoke(app, ["ls", "--tasks-dir", str(tasks)])
    assert isinstance(res.exception, UserError)
    assert str(res.exception) == "tasks/models/mini.yaml:5: tier 'tiny' must match its file name (mini)"


ALIGN_PAIRS = "pairs: [owlv2->clip, judge->clip]"


@pytest.mark.parametrize(
    ("new", "expected"),
    [
        ("pairs: [owlv2, judge->clip]", "tasks/studies/align.yaml:21: pair 'owlv2' is not SOURCE->TARGET"),
        ("pairs: [owl->clip, judge->clip]",
         "tasks/studies/align.yaml:21: unknown encoder 'owl'; did you mean 'owlv2'? (known: owlv2, judge, clip) (pairs name encoders of this file)"),
        ("pairs: [clip->clip, judge->clip]", "tasks/studies/align.yaml:21: pair 'clip->clip' maps an encoder onto itself"),
        ("", "tasks/studies/align.yaml:1: align studies need 'pairs' (SOURCE->TARGET encoder names)"),
    ],
)
def test_study_pair_mistakes_are_one_located_line(tasks: Path, new: str, expected: str) -> None:
    _replace(tasks / "studies" / "align.yaml", ALIGN_PAIRS, new)
    with pytest.raises(UserError) as info:
        StudyRegistry.from_dir(tasks).get("align:judge->clip", "synth-imagenet")
    assert str(info.value) == expected


def test_a_study_tier_override_for_an_unknown_tier(tasks: Path) -> None:
    _replace(tasks / "studies" / "align.yaml", "tiers:\n  paper:", "tiers:\n  papr:")
    with pytest.raises(UserError) as info:
        StudyRegistry.from_dir(tasks).get("align:judge->clip", "synth-imagenet")
    assert str(info.value) == "tasks/studies/align.yaml:35: unknown tier 'papr'; did you mean 'paper'? (known: mini, paper)"


def test_a_family_without_study_files_says_where_it_looked(tasks: Path) -> None:
    (tasks / "studies" / "sae.yaml").unlink()
    with pytest.raises(UserError) as info:
        StudyRegistry.from_dir(tasks).get("sae:clip", "synth-coco")
    assert str(info.value) == "no sae study tasks are defined (no tasks/studies/*.yaml with family: sae under tasks)"
    rows = CliRunner().invoke(app, ["ls", "--studies", "--json", "--tasks-dir", str(tasks)])
    assert rows.exit_code == 0 and '"sae:' not in rows.stdout and '"probe:clip"' in rows.stdout
