"""`vwbench data prepare` says so when it replaces a split prepared with other settings (runs
with the old settings then select from the annotations each time, without the file check)."""

from __future__ import annotations

from pathlib import Path

from tests.data import fixtures_real as fx


def _prepare(monkeypatch, capsys, root: Path, n: int) -> tuple[int, str, str]:
    from tests.test_cli_pins import _main

    return _main(monkeypatch, capsys, "data", "prepare", "--dataset", "coco", "--root", root, "--images-per-concept", n)


def _coco(tmp_path: Path, monkeypatch) -> None:
    from vwbench.registry import TaskRegistry

    spec = TaskRegistry.from_dir().dataset("coco")
    fx.write_coco(tmp_path / "coco", [c.name for c in spec.concepts], train_n=3, val_n=spec.heldout_per_concept)


def test_preparing_with_another_count_says_which_split_it_replaced(tmp_path, monkeypatch, capsys) -> None:
    _coco(tmp_path, monkeypatch)
    code, _, err = _prepare(monkeypatch, capsys, tmp_path, 2)
    assert code == 0 and "replaced" not in err, err
    code, _, err = _prepare(monkeypatch, capsys, tmp_path, 2)  # the same settings: nothing to say
    assert code == 0 and "replaced" not in err, err
    code, out, err = _prepare(monkeypatch, capsys, tmp_path, 1)
    assert code == 0 and "split: " in out
    assert "replaced the split prepared for 2 training images per concept: runs with those settings now select it from the annotations" in err
