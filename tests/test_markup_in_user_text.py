"""Text that users choose (output paths, task and submission names) reaches the terminal through
rich: square brackets in it must print as they are, never be read as rich markup (a closing tag
such as ``[/x]`` made rich raise after the words were trained)."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vwbench.cli import app

ODD = "runs [/x] [bold]b"


def test_a_run_into_a_folder_named_like_markup_prints_its_paths_verbatim(tiny_tasks: Path, tmp_path: Path) -> None:
    out = tmp_path / ODD
    args = ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu", "--threads", "1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, (first.output, first.exception)
    (path,) = (out / "results").rglob("*.json")
    assert first.stdout == f"{path}\n"
    assert "saved trained words " + str(out) in first.stderr.replace("\n", "")
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, (second.output, second.exception)
    assert f"reusing the stored result {path}" in second.stderr


def test_the_reporter_prints_messages_and_stage_names_verbatim(capsys) -> None:
    from vwbench.progress import RichReporter

    reporter = RichReporter()
    long_path = "/tmp/" + "/".join(["a-rather-long-folder-name"] * 8) + "/[/x]/words.safetensors"
    reporter.log(f"saved trained words {long_path}")
    with reporter.stage("train [/x] [bold]words", total=2) as stage:
        stage.advance(loss=0.5, concept="[/y]")
        stage.advance()
    err = capsys.readouterr().err
    assert f"saved trained words {long_path}\n" in err  # whole, on one line
    assert "train [/x] [bold]words" in err
