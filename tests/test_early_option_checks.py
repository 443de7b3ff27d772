"""Options a run can check without data or models are refused before anything loads: a missing
--embeddings file and --anchors the dataset cannot take are one line, exit 2, no --out folder."""

from __future__ import annotations

import pytest

from tests.test_cli_pins import _main

BASE = ["run", "--dataset", "synth-tiny", "--device", "cpu", "--threads", "1"]


@pytest.fixture
def no_loading(monkeypatch):
    """Any split or model load fails the test: these options are checked before both."""
    import vwbench.pipeline_steps as steps
    import vwbench.runner as runner

    def never(*args, **kwargs):
        raise AssertionError("loaded something before checking the options")

    monkeypatch.setattr(steps, "load_split", never)
    monkeypatch.setattr(runner._ModelCache, "get", never)


@pytest.mark.parametrize("kind", ["missing", "folder"])
def test_an_embeddings_path_that_is_no_file(tiny_tasks, tmp_path, monkeypatch, capsys, no_loading, kind) -> None:
    path = tmp_path / "words.safetensors"
    if kind == "folder":
        path.mkdir()
    out = tmp_path / "runs"
    code, stdout, err = _main(monkeypatch, capsys, *BASE, "--task", "clip->owlv2", "--tasks-dir", tiny_tasks, "--out", out, "--embeddings", path)
    what = "is a folder" if kind == "folder" else "no such file"
    assert code == 2 and err == f"error: --embeddings {path}: {what}; give an embeddings submission's .safetensors file (see `vwbench validate`)\n"
    assert stdout == "" and not out.exists()


@pytest.mark.parametrize(("anchors", "message"), [
    ("circle=star,circle=moon", "--anchors gives concept 'circle' two anchors ('star' and 'moon'); give one"),
    ("hexagon=star", "--anchors names concept 'hexagon', which is not one of the dataset's: "),
    ("star,moon", "--anchors 'star': give one word for all concepts, or concept=word pairs"),
])
def test_anchors_the_dataset_cannot_take(tiny_tasks, tmp_path, monkeypatch, capsys, no_loading, anchors, message) -> None:
    out = tmp_path / "runs"
    code, _, err = _main(monkeypatch, capsys, *BASE, "--task", "clip->clip", "--tasks-dir", tiny_tasks, "--out", out, "--delta", "0.5", "--anchors", anchors)
    assert code == 2 and err.startswith(f"error: {message}") and err.count("\n") == 1
    assert not out.exists()


def test_delta_sweep_checks_its_anchors_before_loading_models(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    import vwbench.runner as runner

    def never(*args, **kwargs):
        raise AssertionError("loaded a model before checking --anchors")

    monkeypatch.setattr(runner._ModelCache, "get", never)
    out = tmp_path / "runs"
    code, _, err = _main(monkeypatch, capsys, "delta-sweep", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", tiny_tasks,
                         "--deltas", "0.5", "--anchors", "hexagon=star", "--out", out, "--device", "cpu")
    assert code == 2 and err.startswith("error: --anchors names concept 'hexagon'") and err.count("\n") == 1
    assert not out.exists()


@pytest.mark.parametrize("given", [False, True])
def test_a_dataset_read_from_disk_needs_its_folder_before_anything_loads(tmp_path, monkeypatch, capsys, no_loading, given) -> None:
    """A paper-tier run with no (or a wrong) --data-root: one line, no `data coco ...` stage line
    before it, no --out folder."""
    monkeypatch.delenv("VWBENCH_DATA", raising=False)
    out = tmp_path / "runs"
    root = tmp_path / "data"
    extra = ["--data-root", root] if given else []
    code, stdout, err = _main(monkeypatch, capsys, "run", "--task", "sd->owlv2", "--dataset", "coco", "--device", "cpu", "--out", out, *extra)
    expected = (f"error: dataset coco: folder {root / 'coco'} not found; expected the dataset under DATA_ROOT/coco\n" if given
                else "error: dataset coco is read from disk: pass --data-root DIR (or set $VWBENCH_DATA) where DIR/coco holds the dataset\n")
    assert code == 2 and stdout == "" and err == expected
    assert not out.exists()


def test_the_loaders_reading_disk_are_the_registrys_real_ones() -> None:
    from vwbench.registry.models import DATASET_LOADERS, LOADERS_READING_DISK

    assert LOADERS_READING_DISK == set(DATASET_LOADERS) - {"synth"}
