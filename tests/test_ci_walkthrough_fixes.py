"""What a CI engineer's walk through vwbench found: `check --baseline FOLDER` said "no such file",
and `bench --render` ignored --json and --quick."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError

REPO = Path(__file__).resolve().parents[1]


def test_a_baseline_folder_is_named_as_such_with_the_file_inside_it(tmp_path) -> None:
    res = CliRunner().invoke(app, ["check", "--baseline", str(REPO / "leaderboards" / "mini")])
    assert isinstance(res.exception, UserError)
    assert str(res.exception) == f"--baseline {REPO / 'leaderboards' / 'mini'}: a folder, not a leaderboard.json; did you mean {REPO / 'leaderboards' / 'mini' / 'leaderboard.json'}?"
    empty = CliRunner().invoke(app, ["check", "--baseline", str(tmp_path)])
    assert str(empty.exception) == f"--baseline {tmp_path}: a folder, not a leaderboard.json"


def test_render_refuses_the_options_of_a_measuring_run(tmp_path) -> None:
    for flag in ("--json", "--quick"):
        res = CliRunner().invoke(app, ["bench", "--render", flag, "--out", str(tmp_path / "perf.md")])
        assert isinstance(res.exception, UserError), res.output
        assert str(res.exception) == f"--render measures nothing and prints the report's path; {flag} applies to a measuring run: drop it"
    assert list(tmp_path.iterdir()) == []
