"""mini-sd is built on the text tower in the build folder: a damaged tower is a one-line error
before the UNet's training, never a traceback when its log is written after it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vwbench.errors import UserError
from vwbench.zoo import build
from vwbench.zoo.manifest import write_manifest
from vwbench.zoo.recipes import sd as sd_recipe


def _tower(root: Path) -> Path:
    folder = build.entry_folder(root, "mini-sd-text")
    folder.mkdir(parents=True)
    (folder / "open_clip_model.safetensors").write_bytes(b"tower weights")
    (folder / "training_log.json").write_text(json.dumps({"recipe": {"steps": 3}, "quality": {}, "wall_s": 1.0}))
    write_manifest(folder)
    return folder


@pytest.fixture
def no_sd_training(monkeypatch):
    calls = []
    monkeypatch.setattr(sd_recipe, "train_mini_sd", lambda out, **kw: calls.append(kw) or {"trained": True})
    return calls


@pytest.fixture(autouse=True)
def build_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(build.BUILD_DIR_ENV, str(tmp_path / "build"))


def test_sd_build_hash_checks_its_tower_before_training(tmp_path, no_sd_training):
    tower = _tower(tmp_path)
    assert build._sd_train(tmp_path / "out", tmp_path, print) == {"trained": True}
    assert no_sd_training[0]["config"].text_tower == str(tower)

    (tower / "open_clip_model.safetensors").write_bytes(b"changed after it was built")
    with pytest.raises(UserError, match="text tower is damaged: .*open_clip_model.safetensors.*rebuild it with `vwbench zoo train --only mini-sd-text`"):
        build._sd_train(tmp_path / "out", tmp_path, print)
    assert len(no_sd_training) == 1  # refused before training


@pytest.mark.parametrize("damaged", ["manifest.json", "training_log.json"])
def test_tower_record_names_a_damaged_file(tmp_path, damaged):
    tower = _tower(tmp_path)
    record = sd_recipe._tower_record(str(tower))
    assert record["folder"] == "mini-sd-text" and record["settings"] == {"steps": 3}
    assert len(record["weights_sha256"]) == 64

    (tower / damaged).write_text('{"files": ')
    with pytest.raises(UserError, match=f"{damaged}: not readable JSON.*zoo train --only mini-sd-text"):
        sd_recipe._tower_record(str(tower))
    (tower / damaged).write_text("[1, 2]")
    with pytest.raises(UserError, match=f"{damaged}: not a JSON object"):
        sd_recipe._tower_record(str(tower))
