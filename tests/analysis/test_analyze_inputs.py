"""`vwbench analyze`: an empty --layers or --out is a one-line error before any model is loaded,
and an analysis's JSON and PNG are written all or nothing."""

from __future__ import annotations

import json

import pytest

from vwbench.errors import UserError


def _cli(monkeypatch, capsys, *args: str) -> tuple[int, str]:
    from vwbench.cli import main

    monkeypatch.setattr("sys.argv", ["vwbench", *args])
    with pytest.raises(SystemExit) as exit_info:
        main()
    return exit_info.value.code, capsys.readouterr().err


@pytest.mark.parametrize("command", ["tsne", "truncation"])
@pytest.mark.parametrize("layers", ["", ",", " , "])
def test_an_empty_layer_list_is_refused(tmp_path, monkeypatch, capsys, command, layers):
    result = tmp_path / "result.json"  # never read: --layers is checked first
    code, err = _cli(monkeypatch, capsys, "analyze", command, "--result", str(result), "--layers", layers, "--out", str(tmp_path / "lay" / "x"), "--device", "cpu")
    assert code == 2 and err.startswith("error: --layers") and "names no block" in err and err.count("\n") == 1
    assert not (tmp_path / "lay").exists()


@pytest.mark.parametrize("command", ["tsne", "truncation", "neighbors"])
@pytest.mark.parametrize("out", ["", ".", ".."])
def test_an_out_that_names_no_file_is_refused(tmp_path, monkeypatch, capsys, command, out):
    code, err = _cli(monkeypatch, capsys, "analyze", command, "--result", str(tmp_path / "result.json"), "--out", out, "--device", "cpu")
    assert code == 2 and err.startswith("error: --out") and "names no file" in err and err.count("\n") == 1


def test_check_layers_refuses_an_empty_list():
    from vwbench.analysis.layers import check_layers

    with pytest.raises(UserError, match="names no block"):
        check_layers([], 24)
    assert check_layers([8, 1, 8], 24) == [1, 8]


def test_a_tsne_figure_without_layers_is_a_user_error():
    from vwbench.analysis.layers import tsne_figure

    with pytest.raises(UserError):
        tsne_figure({}, [], [], 24, "t")


def _broken_figure():
    from vwbench.analysis.layers import truncation_figure

    fig = truncation_figure([{"layers": 1, "accuracy": 0.5}], 2, "t")

    def savefig(*args, **kwargs):
        raise ValueError("Number of columns must be a positive integer, not 0")

    fig.savefig = savefig
    return fig


def test_json_and_png_are_written_all_or_nothing(tmp_path, monkeypatch):
    from vwbench.analysis import plotting
    from vwbench.analysis.layers import truncation_figure

    stem = tmp_path / "out" / "x"
    with pytest.raises(ValueError):  # the figure fails to draw: no JSON left without its PNG
        plotting.save_json_and_png(stem, {"rows": []}, _broken_figure())
    assert not stem.with_suffix(".json").exists() and not stem.with_suffix(".png").exists()

    with pytest.raises(TypeError):  # the payload is not JSON: no PNG left without its JSON
        plotting.save_json_and_png(stem, {"bad": object()}, truncation_figure([{"layers": 1, "accuracy": 0.5}], 2, "t"))
    assert not stem.with_suffix(".json").exists() and not stem.with_suffix(".png").exists()

    json_path, png_path = plotting.save_json_and_png(stem, {"rows": [1]}, truncation_figure([{"layers": 1, "accuracy": 0.5}], 2, "t"))
    assert json.loads(json_path.read_text()) == {"rows": [1]} and png_path.read_bytes()[:4] == b"\x89PNG"


def test_json_and_png_that_cannot_both_be_written_keep_the_old_files(tmp_path, monkeypatch, disk_full_at):
    """An analysis rerun whose JSON cannot be written keeps the previous PNG (and JSON) as they were."""
    from vwbench.analysis import plotting
    from vwbench.analysis.layers import truncation_figure

    stem = tmp_path / "an" / "x"
    stem.parent.mkdir()
    stem.with_suffix(".png").write_bytes(b"old png")
    stem.with_suffix(".json").mkdir()  # a folder where the JSON goes
    with pytest.raises(UserError, match="x.json"):
        plotting.save_json_and_png(stem, {"rows": []}, truncation_figure([{"layers": 1, "accuracy": 0.5}], 2, "t"))
    assert stem.with_suffix(".png").read_bytes() == b"old png"
    assert sorted(p.name for p in stem.parent.iterdir()) == ["x.json", "x.png"]  # no temporary file left

    stem.with_suffix(".json").rmdir()
    stem.with_suffix(".json").write_text('{"old": true}')
    disk_full_at(2)  # the disk fills up while the second file is written
    with pytest.raises(UserError, match="No space left"):
        plotting.save_json_and_png(stem, {"rows": []}, truncation_figure([{"layers": 1, "accuracy": 0.5}], 2, "t"))
    monkeypatch.undo()
    assert stem.with_suffix(".png").read_bytes() == b"old png" and stem.with_suffix(".json").read_text() == '{"old": true}'
    assert sorted(p.name for p in stem.parent.iterdir()) == ["x.json", "x.png"]


def test_the_sweep_plot_is_drawn_in_memory(tmp_path, monkeypatch):
    """delta-sweep's plot needs no scratch folder: PNG bytes come from the figure in memory."""
    import tempfile

    from vwbench.analysis.sweep import SweepRow
    from vwbench.commands.fracture import _plot_png

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "no-such-folder"))  # any scratch file would fail
    rows = [SweepRow("clip->clip", "synth-tiny", d, "accuracy", 0.5, 0.4, 0.6, "r.json") for d in (0.1, 1.0)]
    assert _plot_png(rows, "t")[:8] == b"\x89PNG\r\n\x1a\n"
    assert not (tmp_path / "no-such-folder").exists()


def test_an_analysis_with_a_folder_where_its_file_goes_is_refused_before_the_work(tiny_tasks, tmp_path, monkeypatch, capsys):
    """The targets are checked before the analysis runs: here the clip run would fail the analysis
    itself ("needs a generation model"); the folder in the way is reported first, nothing written."""
    from typer.testing import CliRunner

    from vwbench.cli import app

    res = CliRunner().invoke(app, ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--steps", "0", "--trials", "1", "--tasks-dir", str(tiny_tasks),
                                   "--out", str(tmp_path / "runs"), "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 0, res.output
    result = next((tmp_path / "runs" / "results").rglob("*.json"))
    (tmp_path / "an" / "tr.png").mkdir(parents=True)
    for command in ("truncation", "tsne"):
        code, err = _cli(monkeypatch, capsys, "analyze", command, "--result", str(result), "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path / "an" / "tr"), "--device", "cpu")
        assert code == 2 and err.startswith("error: cannot write") and "tr.png: it is a folder" in err and err.count("\n") == 1
    (tmp_path / "an" / "nb.json").mkdir()
    code, err = _cli(monkeypatch, capsys, "analyze", "neighbors", "--result", str(result), "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path / "an" / "nb"), "--device", "cpu")
    assert code == 2 and "nb.json: it is a folder" in err and err.count("\n") == 1
    assert sorted(p.name for p in (tmp_path / "an").iterdir()) == ["nb.json", "tr.png"]


def test_an_analysis_whose_checkpoint_is_damaged_is_one_line_and_leaves_no_folder(tiny_tasks, tmp_path, monkeypatch, capsys):
    """Models load through the runner's loader (a damaged checkpoint is one line, not a
    SafetensorError traceback), and the --out folder the analysis made is removed again."""
    import shutil

    import yaml
    from typer.testing import CliRunner

    from vwbench.cli import app

    res = CliRunner().invoke(app, ["run", "--task", "clip->clip", "--dataset", "synth-tiny", "--steps", "0", "--trials", "1", "--tasks-dir", str(tiny_tasks),
                                   "--out", str(tmp_path / "runs"), "--device", "cpu", "--threads", "1"])
    assert res.exit_code == 0, res.output
    result = next((tmp_path / "runs" / "results").rglob("*.json"))
    # as a result without checkpoint hashes (an older one): one with them refuses the changed files
    # before loading (tests/analysis/test_analysis_checkpoint_checked.py); the load is what is tested
    data = json.loads(result.read_text())
    for entry in data["provenance"]["checkpoints"]:
        entry["sha256"] = {}
    result.write_text(json.dumps(data))
    tasks = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    damaged = tmp_path / "clip"
    shutil.copytree(tiny_tasks.parent / "clip", damaged)
    weights = next(damaged.glob("*.safetensors"))
    weights.write_bytes(weights.read_bytes()[:100])
    (damaged / "manifest.json").unlink()  # hashing it would refuse first; the load is what is tested
    tier = yaml.safe_load((tasks / "models" / "tiny.yaml").read_text())
    tier["models"]["clip"]["checkpoint"] = {"path": str(damaged)}
    (tasks / "models" / "tiny.yaml").write_text(yaml.safe_dump(tier))
    out = tmp_path / "new" / "sub" / "nb"
    code, err = _cli(monkeypatch, capsys, "analyze", "neighbors", "--result", str(result), "--tasks-dir", str(tasks), "--out", str(out), "--device", "cpu")
    assert code == 2 and err.count("\n") == 1 and err.startswith(f"error: checkpoint {damaged} cannot be loaded (SafetensorError"), err
    assert not (tmp_path / "new").exists()
