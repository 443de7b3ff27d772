"""A reused result's summary prints ``provenance.created`` and the stage names of
``provenance.wall_time_s`` verbatim: they come from the stored result file, which vwbench reads as
foreign JSON (copied from another machine, hand-edited), and a ``[/x]`` in them made the reuse end
in rich's MarkupError traceback, a ``[bold]`` vanished."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from vwbench.cli import app


def test_a_reused_result_with_brackets_in_its_provenance_prints_them_verbatim(tiny_tasks: Path, tmp_path: Path) -> None:
    out = tmp_path / "runs"
    args = ["run", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu", "--threads", "1"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, (first.output, first.exception)
    (path,) = (out / "results").rglob("*.json")
    payload = json.loads(path.read_text())
    payload["provenance"]["created"] = "2026-12-07 [/x] [bold]b"
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    second = CliRunner().invoke(app, args)
    assert second.exit_code == 0, (second.output, second.exception)
    assert "(created 2026-12-07 [/x] [bold]b)" in second.stderr
