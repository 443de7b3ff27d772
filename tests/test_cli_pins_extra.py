"""Two CLI details mutation round 7 left unpinned: `ls --tier` filters the study table too, and
`analyze neighbors --k` must be at least 1."""

from __future__ import annotations

import re

from typer.testing import CliRunner

from vwbench.cli import app

STUDY_ROW = re.compile(r"^│ (?:probe|align|sae):\S*\s*│[^│]*│ (\w+)\s*│", re.MULTILINE)


def _study_tiers(*args: str) -> set[str]:
    res = CliRunner().invoke(app, ["ls", *args], env={"COLUMNS": "220"})
    assert res.exit_code == 0, res.output
    return set(STUDY_ROW.findall(res.output))


def test_ls_tier_filters_the_study_table_as_well() -> None:
    assert _study_tiers() == {"mini", "paper"}  # the repository's tasks/ has study tasks of both tiers
    assert _study_tiers("--tier", "mini") == {"mini"}
    assert _study_tiers("--tier", "paper") == {"paper"}


def test_analyze_neighbors_needs_at_least_one_neighbour(tmp_path) -> None:
    res = CliRunner().invoke(app, ["analyze", "neighbors", "--result", str(tmp_path / "r.json"), "--k", "0"])
    assert res.exit_code == 2 and "--k" in res.output
