"""Mutation-testing round 12: `vwbench analyze --out` given as a folder ending in `/` whose last
part is `.` or `..` (`--out ./`, `--out runs/../`) is that folder, with the default names inside
it, not a refused "names no file"."""

from __future__ import annotations

from pathlib import Path

import pytest

from vwbench.commands.analyze import _analysis_out
from vwbench.errors import UserError


@pytest.mark.parametrize(("out", "folder"), [("./", "here"), ("sub/../", "here"), ("../", ".")])
def test_a_dot_folder_out_gets_the_default_name_inside_it(tmp_path: Path, monkeypatch, out: str, folder: str) -> None:
    here = tmp_path / "here"
    (here / "sub").mkdir(parents=True)
    monkeypatch.chdir(here)
    result = tmp_path / "runs" / "lstsq-abc.json"
    with _analysis_out(out, [result], "neighbors") as stem:
        assert stem.name == "analysis-neighbors-lstsq-abc"
        assert stem.parent.resolve() == (tmp_path / folder if folder != "here" else here).resolve()


@pytest.mark.parametrize("out", [".", "..", "sub/.."])
def test_a_dot_out_without_a_slash_still_names_no_file(tmp_path: Path, monkeypatch, out: str) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="names no file: give a file stem .* a folder ending in /"):
        with _analysis_out(out, [tmp_path / "r.json"], "neighbors"):
            pass
