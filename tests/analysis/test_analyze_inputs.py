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

    real_write = plotting.atomic_write_bytes

    def failing_json(path, data, **kwargs):
        if path.suffix == ".json":
            raise UserError(f"cannot write {path}: No space left on device")
        return real_write(path, data, **kwargs)

    monkeypatch.setattr(plotting, "atomic_write_bytes", failing_json)
    with pytest.raises(UserError, match="No space"):  # the JSON cannot be written: the new PNG goes too
        plotting.save_json_and_png(stem, {"rows": []}, truncation_figure([{"layers": 1, "accuracy": 0.5}], 2, "t"))
    assert not stem.with_suffix(".png").exists()
    monkeypatch.undo()

    json_path, png_path = plotting.save_json_and_png(stem, {"rows": [1]}, truncation_figure([{"layers": 1, "accuracy": 0.5}], 2, "t"))
    assert json.loads(json_path.read_text()) == {"rows": [1]} and png_path.read_bytes()[:4] == b"\x89PNG"
