"""Leaderboards from result files (``vwbench leaderboard``) and regression checks against a
stored leaderboard (``vwbench check``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vwbench.leaderboard.build import SCHEMA, SCHEMA_VERSION, build
from vwbench.leaderboard.collect import collect


def board_name(out_dir: Path, name: str | None) -> str:
    """The leaderboard's name: ``name``, else (no ``--name``, or an empty one) the ``--out``
    folder's name. Either must be text that UTF-8 can encode (a folder name with undecodable bytes,
    or ``--name`` given such bytes, cannot be written into README.md or index.html): otherwise a
    one-line :class:`UserError`."""
    from vwbench.errors import UserError
    from vwbench.results.schema import printable

    chosen = name or Path(out_dir).name  # an empty --name falls back too: never a title without a name
    try:
        chosen.encode("utf-8")
    except UnicodeEncodeError:
        if not name:
            raise UserError(f"--out {printable(str(out_dir))}: the folder's name is not valid UTF-8, and it names the leaderboard; give --name NAME (UTF-8 text) or another --out") from None
        raise UserError(f"--name \"{printable(name)}\": not valid UTF-8 text; give a name in UTF-8") from None
    return chosen


def render_leaderboard(board: dict[str, Any]) -> dict[str, bytes]:
    """``leaderboard.json``, ``README.md`` and ``index.html`` of ``board``, rendered in memory and
    encoded. A board that strict JSON or UTF-8 cannot hold (a NaN, a lone surrogate: results that
    hold them are skipped, so this is a guard) is a one-line :class:`UserError`."""
    import json

    from vwbench.errors import UserError
    from vwbench.leaderboard.html_page import render_html
    from vwbench.leaderboard.markdown import render_markdown
    from vwbench.results.schema import unpublishable

    problem = unpublishable(board, "leaderboard")
    if problem:
        raise UserError(f"cannot write the leaderboard: {problem}; remove the result file that holds it and run `vwbench leaderboard` again")
    try:
        return {
            "leaderboard.json": (json.dumps(board, indent=2, sort_keys=True, allow_nan=False) + "\n").encode(),
            "README.md": render_markdown(board).encode(),
            "index.html": render_html(board).encode(),
        }
    except (ValueError, UnicodeEncodeError) as exc:  # the guard's guard: never a traceback, never half a leaderboard
        raise UserError(f"cannot write the leaderboard: {type(exc).__name__}: {str(exc)[:200]}") from None


def check_leaderboard_out(out_dir: Path) -> None:
    """``--out`` may hold an earlier leaderboard (its ``leaderboard.json`` is there: the three files
    are replaced) or none of the three files; a README.md or index.html of something else is a
    one-line :class:`UserError` rather than silently replaced (``--out .`` in a project)."""
    from vwbench.errors import UserError
    from vwbench.results.schema import printable

    out_dir = Path(out_dir)
    if (out_dir / "leaderboard.json").exists():
        return
    taken = [name for name in ("README.md", "index.html") if (out_dir / name).is_file()]  # a folder there has its own error
    if taken:
        raise UserError(
            f"--out {printable(str(out_dir))} holds {' and '.join(taken)} but no leaderboard.json, so not a leaderboard's: "
            "writing there would replace them; give an empty or new folder (or one of an earlier leaderboard)"
        )


def write_leaderboard(results_dir: Path, out_dir: Path, name: str | None = None, check: dict[str, Any] | None = None) -> dict[str, Any]:
    """Collect ``results_dir``, write ``README.md``, ``leaderboard.json`` and ``index.html`` into
    ``out_dir`` and return the leaderboard payload. All three are rendered in memory first and
    written together (:func:`vwbench.results.atomic.write_file_set`): a failure writes none."""
    from vwbench.results.atomic import write_file_set

    out_dir = Path(out_dir)
    check_leaderboard_out(out_dir)
    board = build(collect(results_dir), board_name(out_dir, name), check)
    files = render_leaderboard(board)
    write_file_set({out_dir / filename: data for filename, data in files.items()})
    return board


__all__ = ["SCHEMA", "SCHEMA_VERSION", "board_name", "build", "check_leaderboard_out", "collect", "render_leaderboard", "write_leaderboard"]
