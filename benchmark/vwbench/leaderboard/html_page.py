"""``index.html`` of a leaderboard: one self-contained page (no external files, fonts or scripts).

Built with jinja2 and autoescaping, so a name such as ``<script>…`` is shown as text. The page's
only script is its own table sorter, and a Content-Security-Policy allows exactly that script
(by hash), so no script from a result file could run even if escaping failed.
"""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path
from typing import Any

import jinja2

from vwbench.leaderboard.build import fmt
from vwbench.leaderboard.markdown import SUPERSEDED_RULE, TIED_MARK, provenance_note, shows_tied, superseded_rows, tied_meaning

TEMPLATES = Path(__file__).with_name("templates")
SORT_SCRIPT = """
document.querySelectorAll('table.sortable thead th').forEach(function (th, index) {
  // a button in each header cell: focusable, and Enter or Space clicks it (the click reaches th)
  var button = document.createElement('button');
  button.type = 'button';
  while (th.firstChild) { button.appendChild(th.firstChild); }
  th.appendChild(button);
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.getAttribute('data-order') !== 'asc';
    table.querySelectorAll('thead th').forEach(function (h) { h.removeAttribute('data-order'); h.removeAttribute('aria-sort'); });
    th.setAttribute('data-order', asc ? 'asc' : 'desc');
    th.setAttribute('aria-sort', asc ? 'ascending' : 'descending');
    var col = th.cellIndex;
    rows.sort(function (a, b) {
      var x = a.cells[col].getAttribute('data-sort'), y = b.cells[col].getAttribute('data-sort');
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (!isNaN(nx) && !isNaN(ny)) ? nx - ny : String(x).localeCompare(String(y));
      return asc ? c : -c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
document.body.setAttribute('data-sortable', 'ready');
"""


def _colour(value: float | None) -> str:
    """A light-to-dark blue for a value in [0, 1] (grey when missing)."""
    if value is None:
        return "#eeeeee"
    v = min(1.0, max(0.0, value))
    low, high = (247, 251, 255), (8, 48, 107)
    r, g, b = (round(a + (c - a) * v) for a, c in zip(low, high))
    return f"#{r:02x}{g:02x}{b:02x}"


def _text_colour(value: float | None) -> str:
    """The number's colour on a :func:`_colour` cell: white above 0.65, black below, which keeps
    at least 4.5:1 contrast (WCAG AA for small text) over the whole scale."""
    return "#ffffff" if value is not None and value > 0.65 else "#000000"


def render_html(board: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True,
    )
    env.filters["fmt"] = fmt
    env.filters["colour"] = _colour
    env.filters["text_colour"] = _text_colour
    env.tests["tied"] = shows_tied
    script_hash = base64.b64encode(hashlib.sha256(SORT_SCRIPT.encode()).digest()).decode()
    csp = f"default-src 'none'; img-src data:; style-src 'unsafe-inline'; script-src 'sha256-{script_hash}'; base-uri 'none'; form-action 'none'"
    return env.get_template("index.html.j2").render(
        board=board, csp=csp, sort_script=SORT_SCRIPT, board_json_size=len(json.dumps(board)),
        superseded=superseded_rows(board), superseded_rule=SUPERSEDED_RULE, provenance_note=provenance_note(board),
        tied_mark=TIED_MARK, tied_meaning=tied_meaning,
    )
