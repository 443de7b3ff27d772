"""`vwbench zoo check --root DIR` on a folder that holds no checkpoint (CHANGELOG: "a `--root` that
does not exist, is a file or holds no checkpoint is a one-line error"; README: errors name the
problem and the fix). The fix must work for DIR: rebuilding into the package's own zoo (what
`vwbench zoo train --only NAME` without --root does) leaves DIR as empty as it was. (The error
came from the checkpoint resolver, which named no fix for a folder not called `zoo`, and for one
called `zoo` advised `vwbench zoo train --only mini-clip` without `--root`.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from vwbench.zoo.build import BUILD_DIR_ENV

from vwbench.cli import app
from vwbench.errors import UserError


@pytest.mark.parametrize("name", ["zoo", "models"])
def test_zoo_check_of_a_root_without_checkpoints_names_a_fix_for_that_root(tmp_path: Path, name: str) -> None:
    root = tmp_path / name
    root.mkdir()
    res = CliRunner().invoke(app, ["zoo", "check", "--hashes-only", "--root", str(root)])
    assert isinstance(res.exception, UserError), res.output
    message = str(res.exception)
    assert "\n" not in message and str(root) in message
    assert "vwbench zoo train" in message and "--root" in message, message


def test_zoo_report_of_a_root_without_checkpoints_says_which_folder_to_pass(tmp_path: Path) -> None:
    """The behaviour `zoo check` should match: one line naming the folder and the --root fix, no --out made."""
    root = tmp_path / "zoo"
    root.mkdir()
    res = CliRunner().invoke(app, ["zoo", "report", "--root", str(root), "--out", str(tmp_path / "card")])
    assert isinstance(res.exception, UserError)
    message = str(res.exception)
    assert message.startswith(f"no zoo checkpoints in {root} (no mini-clip, mini-judge, mini-owlv2, mini-sd folder with a manifest.json or training_log.json)")
    assert message.endswith("pass --root the folder `vwbench zoo train --root` wrote")
    assert not (tmp_path / "card").exists()


def test_zoo_check_of_a_root_missing_one_checkpoint_names_the_rebuild_into_that_root(tmp_path: Path) -> None:
    root = tmp_path / "models"
    (root / "mini-clip").mkdir(parents=True)
    (root / "mini-clip" / "training_log.json").write_text("{}")  # one model built there: the root itself is right
    res = CliRunner().invoke(app, ["zoo", "check", "--hashes-only", "--root", str(root), "--only", "mini-owlv2"])
    assert isinstance(res.exception, UserError), res.output
    assert str(res.exception) == f"checkpoint folder {root / 'mini-owlv2'} not found; rebuild it with: vwbench zoo train --only mini-owlv2 --root {root}"


@pytest.fixture(autouse=True)
def built_tower(tmp_path, monkeypatch):
    """A build folder holding mini-sd-text, as after a full `vwbench zoo train`: that unshipped
    model lives there whatever --root is, so it must not make a wrong --root look built."""
    build = tmp_path / "build"
    (build / "mini-sd-text").mkdir(parents=True)
    (build / "mini-sd-text" / "manifest.json").write_text("{}")
    monkeypatch.setenv(BUILD_DIR_ENV, str(build))
