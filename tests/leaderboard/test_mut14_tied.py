"""Mutation round 14: the tied mark beyond test_tied_marker.py.

* index.html's study tables: a tied study row below rank 1 shows the mark (its title saying "the
  best row's"), its sort key stays the bare rank, and the study's legend (about rows, not methods)
  is under that table only;
* README.md: in a pair table with an in-domain ceiling, the legend comes after the ceiling row
  (a paragraph between the rows would split the table);
* shows_tied on its own: an unranked row (rank None) never shows the mark.
"""

from __future__ import annotations

import re

from vwbench.leaderboard.html_page import render_html
from vwbench.leaderboard.markdown import render_markdown, shows_tied

from .test_tied_marker import LEGEND_HTML, LEGEND_MD, board, study_board

STUDY_MEANING_HTML = "tied: its 95% interval reaches the best row&#39;s interval"
STUDY_MARK_HTML = f'<span class="tied" title="{STUDY_MEANING_HTML}">≈</span>'
STUDY_LEGEND_HTML = f'<p class="tied-legend"><span class="tied">≈</span> {STUDY_MEANING_HTML}</p>'


def study_table(page: str) -> str:
    tables = page.split('<table class="sortable study-rows">')
    assert len(tables) == 2, "one study table expected"
    return tables[1].split("</table>", 1)[0]


def study_rank_cell(page: str, task: str) -> tuple[str, str]:
    """(data-sort, content) of the rank cell of the study row whose task cell is ``task``."""
    found = re.findall(rf'<tr><td class="num" data-sort="([^"]*)">(.*?)</td><td data-sort="{task}">{task}</td>', study_table(page))
    assert len(found) == 1, found
    return found[0]


def test_html_study_rows_are_marked_with_the_row_meaning() -> None:
    page = render_html(study_board())
    assert study_rank_cell(page, "probe:owlv2") == ("2", "2 " + STUDY_MARK_HTML)  # the sorter still reads the bare rank
    assert study_rank_cell(page, "probe:clip") == ("1", "1")  # the best: no mark
    body = page.split("</style>", 1)[1]
    assert body.count(STUDY_MARK_HTML) == 1 and "best method&#39;s" not in body  # no pair row is tied


def test_html_study_legend_is_under_its_table_only() -> None:
    page = render_html(study_board())
    assert page.count(STUDY_LEGEND_HTML) == 1 and LEGEND_HTML not in page
    before, _ = page.split(STUDY_LEGEND_HTML)
    assert before.endswith("</table></div>\n") and before.rsplit("<table ", 1)[1].startswith('class="sortable study-rows"')
    untied = board(tied=False)  # its only study row is rank 1
    assert 'class="tied' not in render_html(untied).split("</style>", 1)[1]


def test_markdown_legend_follows_the_ceiling_row() -> None:
    b = board()
    b["datasets"]["synth-x"]["pairs"]["owlv2->clip"]["in_domain"] = {"method": "in-domain", "value": 0.9, "ci95": [0.85, 0.95], "result": "r3"}
    lines = render_markdown(b).splitlines()
    at = lines.index(LEGEND_MD)
    assert lines[at - 3:at] == [
        "| 3 | knn | 0.300 [0.250, 0.350] <sub>r4</sub> |",
        "| ceiling | in-domain (clip word) | 0.900 [0.850, 0.950] <sub>r3</sub> |",
        "",
    ]


def test_shows_tied_needs_a_rank_below_1() -> None:
    assert shows_tied({"tied_with_best": True, "rank": 2})
    assert not shows_tied({"tied_with_best": True, "rank": 1})
    assert not shows_tied({"tied_with_best": True, "rank": None})  # an unranked row
    assert not shows_tied({"tied_with_best": True})
    assert not shows_tied({"tied_with_best": False, "rank": 3}) and not shows_tied({"rank": 3})
