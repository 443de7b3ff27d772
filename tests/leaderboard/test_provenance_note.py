"""A board says how many of its results were made from code no commit holds (a `-dirty` working
tree, or outside git): the commit column alone did not tell a reader (69 of the mini board's
156 results were)."""

from __future__ import annotations

import json
from pathlib import Path

from vwbench.leaderboard.html_page import render_html
from vwbench.leaderboard.markdown import provenance_note, render_markdown

REPO = Path(__file__).resolve().parents[2]


def _board(*commits: str | None) -> dict:
    return {"results": {f"r{i}": {"provenance": {"git_commit": c}} for i, c in enumerate(commits, 1)}}


def test_clean_commits_need_no_note() -> None:
    assert provenance_note(_board("a" * 40, "b" * 40)) is None


def test_dirty_and_unknown_commits_are_counted() -> None:
    assert provenance_note(_board("a" * 40, "a" * 40 + "-dirty", None)) == (
        "Of the 3 results, 1 was made from a working tree with uncommitted changes (commit `-dirty`: that commit's code plus "
        "changes it does not hold), and 1 names no commit (made outside a git checkout)."
    )
    assert provenance_note(_board("a-dirty", "b-dirty")).startswith("All 2 results were made from a working tree with uncommitted changes")
    assert provenance_note(_board("a-dirty")).startswith("The one result was made from a working tree with uncommitted changes")


def test_a_commit_git_could_not_check_is_counted_too() -> None:
    assert provenance_note(_board("a-unchecked", "a-unchecked")) == (
        "All 2 results were made from a working tree git could not check for changes (commit `-unchecked`)."
    )
    assert provenance_note(_board("a" * 40, "a-unchecked", None)) == (
        "Of the 3 results, 1 was made from a working tree git could not check for changes (commit `-unchecked`), "
        "and 1 names no commit (made outside a git checkout)."
    )


def test_the_committed_boards_carry_the_note_in_both_pages() -> None:
    for folder in (REPO / "leaderboards" / "mini", REPO / "leaderboards" / "mini" / "studies"):
        board = json.loads((folder / "leaderboard.json").read_text())
        note = provenance_note(board)
        assert note is not None
        assert note in render_markdown(board) and note in (folder / "README.md").read_text()
        assert note.replace("`", "").replace("'", "&#39;") in render_html(board)
