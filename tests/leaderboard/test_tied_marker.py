"""The tied mark: a ranked row below rank 1 whose 95% CI reaches the best row's (``tied_with_best``)
shows "≈" beside its rank in README.md and index.html, with a legend under its table. A rank-1 row,
a row that is not tied, the in-domain ceiling and a row of a board written before
``tied_with_best`` show no mark; a table with no marked row has no legend (the legend is shown
only where it explains a mark)."""

from __future__ import annotations

import re

import pytest

from vwbench.leaderboard.build import _dataset
from vwbench.leaderboard.html_page import render_html
from vwbench.leaderboard.markdown import render_markdown

from .test_rank_arithmetic import entry, ids_of
from .test_render_pins import board as pins_board

LEGEND_MD = "≈ tied: its 95% interval reaches the best method's interval"
LEGEND_STUDY_MD = "≈ tied: its 95% interval reaches the best row's interval"
LEGEND_HTML = '<p class="tied-legend"><span class="tied">≈</span> tied: its 95% interval reaches the best method&#39;s interval</p>'
MARK_HTML = '<span class="tied" title="tied: its 95% interval reaches the best method&#39;s interval">≈</span>'


def board(tied: bool = True) -> dict:
    """The pins board with a third method on owlv2->clip: lstsq [0.55, 0.65] is best, ridge
    [0.45, 0.56] reaches it (tied unless ``tied`` is False), knn [0.25, 0.35] does not; the
    clip->owlv2 ceiling carries ``tied_with_best`` as if it were ranked, and must not show it."""
    b = pins_board()
    pairs = b["datasets"]["synth-x"]["pairs"]
    pairs["owlv2->clip"]["rows"] = [
        {"method": "lstsq", "value": 0.6, "ci95": [0.55, 0.65], "result": "r2", "rank": 1, "tied_with_best": True},
        {"method": "ridge", "value": 0.5, "ci95": [0.45, 0.56 if tied else 0.54], "result": "r6", "rank": 2, "tied_with_best": tied},
        {"method": "knn", "value": 0.3, "ci95": [0.25, 0.35], "result": "r4", "rank": 3, "tied_with_best": False},
    ]
    pairs["clip->owlv2"]["rows"][0]["tied_with_best"] = True
    pairs["clip->owlv2"]["in_domain"]["tied_with_best"] = True
    b["results"]["r6"] = {**b["results"]["r4"], "transfer": "ridge", "value": 0.5}
    return b


def lines_of(b: dict) -> list[str]:
    return render_markdown(b).splitlines()


def rank_cell(page: str, method: str) -> str:
    """The rank cell of the pair-table row whose method cell is ``method`` (one such row on the page)."""
    pair_tables = "".join(t.split("</table>", 1)[0] for t in page.split('<table class="sortable pair">')[1:])
    found = re.findall(rf'<tr><td class="num" data-sort="[^"]*">(.*?)</td><td data-sort="{method}">{method}</td>', pair_tables)
    assert len(found) == 1, found
    return found[0]


# ------------------------------------------------------------------ README.md


def test_markdown_marks_a_tied_row_only() -> None:
    lines = lines_of(board())
    assert "| 2 ≈ | ridge | 0.500 [0.450, 0.560] <sub>r6</sub> |" in lines
    assert "| 3 | knn | 0.300 [0.250, 0.350] <sub>r4</sub> |" in lines  # not tied
    assert "| 1 | lstsq | 0.600 [0.550, 0.650] <sub>r2</sub> |" in lines  # the best: tied with itself, no mark
    assert "| ceiling | in-domain (owlv2 word) | 0.900 [0.850, 0.950] <sub>r3</sub> |" in lines  # never marked
    assert sum("≈" in line for line in lines if line.startswith("|")) == 1


def test_markdown_legend_under_the_table_with_a_mark_only() -> None:
    lines = lines_of(board())
    assert lines.count(LEGEND_MD) == 1  # owlv2->clip's table; clip->owlv2 (its only row is rank 1) has none
    at = lines.index(LEGEND_MD)
    assert lines[at - 1] == "" and lines[at - 2] == "| 3 | knn | 0.300 [0.250, 0.350] <sub>r4</sub> |"  # a paragraph, not a table row
    assert [line for line in lines[:at] if line.startswith("### ")][-1] == "### synth-x: owlv2-&gt;clip (acc)"
    untied = lines_of(board(tied=False))
    assert not any("≈" in line for line in untied)


def study_board() -> dict:
    """No tied pair row; the probe study's best row (rank 1, tied with itself) and a rank-2 row tied with it."""
    b = board(tied=False)
    rows = b["studies"]["probe"]["datasets"]["synth-x"]["rows"]
    rows[0]["tied_with_best"] = True
    rows.append({"rank": 2, "task": "probe:owlv2", "method": "linear", "metric": "acc", "value": 0.75, "ci95": [0.6, 0.85],
                 "metrics": {"b_col": 0.2, "a_col": 0.7}, "result": "r1", "tied_with_best": True})
    return b


def test_markdown_study_rows_are_marked_too() -> None:
    lines = lines_of(study_board())
    assert "| 1 | probe:clip | linear | 0.800 [0.700, 0.900] <sub>r5</sub> | 0.250 | 0.750 |" in lines
    assert "| 2 ≈ | probe:owlv2 | linear | 0.750 [0.600, 0.850] <sub>r1</sub> | 0.200 | 0.700 |" in lines
    assert lines.count(LEGEND_STUDY_MD) == 1 and LEGEND_MD not in lines


def test_a_board_written_before_tied_with_best_shows_no_mark() -> None:
    b = board()
    for pair in b["datasets"]["synth-x"]["pairs"].values():
        for row in pair["rows"]:
            del row["tied_with_best"]
    assert "≈" not in render_markdown(b) and 'class="tied"' not in render_html(b).split("</style>", 1)[1]


# ------------------------------------------------------------------ index.html


def test_html_marks_a_tied_row_only_and_keeps_its_sort_key() -> None:
    page = render_html(board())
    assert rank_cell(page, "ridge") == "2 " + MARK_HTML
    assert rank_cell(page, "knn") == "3"
    assert '<tr><td class="num" data-sort="2">2 <span class="tied"' in page  # the sorter reads data-sort: still the bare rank
    assert page.count(MARK_HTML) == 1  # not lstsq (rank 1 in both pairs)
    ceiling = page.split("<tfoot>\n", 1)[1].split("</tfoot>", 1)[0]
    assert ceiling.startswith('<tr class="ceiling"><td data-sort="999">ceiling</td>') and "tied" not in ceiling


def test_html_legend_under_the_table_with_a_mark_only() -> None:
    page = render_html(board())
    assert page.count(LEGEND_HTML) == 1
    before, after = page.split(LEGEND_HTML)
    assert before.endswith("</table></div>\n") and before.rsplit("<h3>", 1)[1].startswith("owlv2-&gt;clip")  # under its table
    untied = render_html(board(tied=False)).split("</style>", 1)[1]
    assert 'class="tied' not in untied and "≈" not in untied


def test_the_build_s_flag_reaches_both_pages() -> None:
    """From result entries: anchor is best, knn's CI reaches anchor's, random's does not; the
    in-domain ceiling (clip->clip identity) is not ranked in the cross pair's table."""
    entries = [
        entry("clip->clip", "identity", 0.95, (0.9, 1.0)),
        entry("owlv2->clip", "anchor", 0.7, (0.6, 0.8)),
        entry("owlv2->clip", "knn", 0.55, (0.45, 0.62)),
        entry("owlv2->clip", "random", 0.2, (0.1, 0.3)),
    ]
    ds = _dataset(entries, ids_of(entries))
    b = pins_board()
    b["datasets"] = {"d": ds}
    b["results"] = {f"r{i}": {**b["results"]["r1"], "task": e.result.task, "transfer": e.result.transfer} for i, e in enumerate(entries, 1)}
    lines = lines_of(b)
    assert "| 2 ≈ | knn | 0.550 [0.450, 0.620] <sub>r3</sub> |" in lines
    assert "| 3 | random | 0.200 [0.100, 0.300] <sub>r4</sub> |" in lines
    assert "| ceiling | in-domain (clip word) | 0.950 [0.900, 1.000] <sub>r1</sub> |" in lines
    assert lines.count(LEGEND_MD) == 1
    page = render_html(b)
    assert rank_cell(page, "knn") == "2 " + MARK_HTML and rank_cell(page, "random") == "3" and page.count(LEGEND_HTML) == 1


# ------------------------------------------------------------------ the sorter, in Chromium

SORT_PROBE = """<script>
window.addEventListener('load', function () {
  var cell = document.querySelector('span.tied').closest('td');
  var table = cell.closest('table');
  var th = table.querySelector('thead th:nth-child(1) button');
  th.click(); th.click();  // rank, descending
  var ranks = Array.prototype.map.call(table.tBodies[0].rows, function (r) { return r.cells[0].textContent; });
  document.body.setAttribute('data-probe', ranks.join('|') + '#' + table.tFoot.rows.length);
});
</script>"""


def test_sorting_a_table_with_a_tied_mark_in_chromium(tmp_path) -> None:
    from .test_chromium import CHROMIUM, run_probe

    if CHROMIUM is None:
        pytest.skip("chromium is not installed (apt-get install -y chromium)")
    b = board()
    b["datasets"]["synth-x"]["pairs"]["owlv2->clip"]["in_domain"] = {"method": "in-domain", "value": 0.9, "ci95": [0.85, 0.95],
                                                                      "result": "r3", "tied_with_best": True}
    found, dom = run_probe(tmp_path, render_html(b), SORT_PROBE, "data-probe", 1280)
    assert 'data-sortable="ready"' in dom
    assert found == "3|2 ≈|1#1"  # sorted by the rank itself, the mark kept in its cell, the ceiling still in the footer
