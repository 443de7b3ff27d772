"""Mutation-testing round 12: `vwbench data prepare` replacing a split prepared with the same
image count but other settings (concepts or options) says so, rather than naming the count."""

from __future__ import annotations

import json

from tests.data.test_prepare_replaces import _coco, _prepare
from vwbench.data.real import SPLIT_FILE


def test_replacing_a_split_of_other_options_names_them_not_the_count(tmp_path, monkeypatch, capsys) -> None:
    _coco(tmp_path, monkeypatch)
    code, _, err = _prepare(monkeypatch, capsys, tmp_path, 2)
    assert code == 0 and "replaced" not in err, err
    split_file = tmp_path / "coco" / SPLIT_FILE
    data = json.loads(split_file.read_text())
    data["settings"]["options"] = {**data["settings"]["options"], "label_rule": "another rule"}  # prepared by another version of the task file
    split_file.write_text(json.dumps(data))
    code, out, err = _prepare(monkeypatch, capsys, tmp_path, 2)
    assert code == 0 and "split: " in out
    assert "replaced the split prepared for other concepts or options: runs with those settings now select it" in err
    assert "training images per concept" not in err
