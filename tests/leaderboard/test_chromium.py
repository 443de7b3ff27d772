"""The HTML leaderboard in headless Chromium: it renders its tables and heatmaps, its own sorter
runs, and the script a result file smuggled in as a method name does not.

Skipped where Chromium is not installed (`.ci/run` installs Debian's `chromium`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from PIL import Image

from .test_leaderboard import EVIL, hostile_results, make_board  # noqa: F401

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage", "--hide-scrollbars",
]

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    profile = tmp_path / "profile"
    return subprocess.run(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=3000", *args],
        capture_output=True, text=True, timeout=180, env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
    )


def test_page_renders_in_headless_chromium(hostile_results, tmp_path) -> None:  # noqa: F811
    out = tmp_path / "board"
    board = make_board(hostile_results, out)
    page = (out / "index.html").resolve().as_uri()
    shot = tmp_path / "shot.png"
    res = chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,2000", page)
    assert shot.is_file(), res.stderr[-2000:]
    with Image.open(shot) as im:
        assert im.size == (1280, 2000)
        colours = im.convert("RGB").getcolors(maxcolors=1_000_000)
        assert colours is not None and len(colours) > 20  # not a blank page: text, tables, heatmap shades

    dom = chromium(tmp_path, "--dump-dom", page).stdout
    assert "<table" in dom and dom.count('<table class="sortable pair">') == len(board["datasets"]["synth-tiny"]["pairs"])
    n_grids = len(board["datasets"]["synth-tiny"]["grids"])
    assert dom.count('<figure class="heatmap"') == n_grids and dom.count('<rect class="cell"') == n_grids * 4
    assert 'data-sortable="ready"' in dom  # the page's own script ran
    assert "data-pwned" not in dom.split("<body", 1)[1].split(">", 1)[0]  # the smuggled one did not
    assert "&lt;script&gt;document.body.setAttribute" in dom  # it is shown as text
    assert "data:image/png;base64," in dom  # the sample generation rendered inline


MEASURE_OVERFLOW = """<script>
window.addEventListener('load', function () {
  var root = document.documentElement;
  document.body.setAttribute('data-overflow', String(root.scrollWidth - root.clientWidth));
});
</script>"""


def run_probe(tmp_path: Path, html: str, script: str, attribute: str, width: int) -> tuple[str, str]:
    """The value ``script`` (added to a copy of the page, whose Content-Security-Policy admits only
    its sorter, so the policy is taken out of the copy) sets as ``attribute`` on the body, and the
    page's DOM, in a ``width``-px window."""
    import re

    html = re.sub(r'<meta http-equiv="Content-Security-Policy"[^>]*>', "", html)
    probe = tmp_path / "probe.html"
    probe.write_text(html.replace("</body>", script + "</body>"))
    dom = chromium(tmp_path, f"--window-size={width},1200", "--dump-dom", probe.resolve().as_uri()).stdout
    found = re.search(rf'{attribute}="([^"]*)"', dom)
    assert found, dom[-2000:]
    return found.group(1), dom


@pytest.mark.parametrize("width", [1280, 420])
def test_wide_tables_scroll_on_their_own_not_the_page(hostile_results, tmp_path, width: int) -> None:  # noqa: F811
    """The provenance table (and on a phone the summary) is wider than the page: it scrolls in its
    own box, so the page itself never scrolls sideways. Measured by a script added to a copy of
    the page (the page's own Content-Security-Policy admits only its sorter)."""
    out = tmp_path / "board"
    make_board(hostile_results, out)
    overflow, dom = run_probe(tmp_path, (out / "index.html").read_text(), MEASURE_OVERFLOW, "data-overflow", width)
    assert int(overflow) <= 0
    assert dom.count('<div class="wide"><table') == dom.count("<table")


KEYBOARD_PROBE = """<script>
window.addEventListener('load', function () {
  var table = document.querySelector('table.sortable.pair tfoot').closest('table');  // a cross pair, with its ceiling
  var button = table.querySelector('thead th:nth-child(3) button');
  button.focus();
  var focused = document.activeElement === button;
  button.click();  // what Enter or Space on the focused button does
  var th = button.closest('th');
  var ceiling = table.tFoot ? table.tFoot.rows.length : -1;
  var inBody = table.tBodies[0].querySelectorAll('tr.ceiling').length;
  document.body.setAttribute('data-probe', [focused, th.getAttribute('aria-sort'), ceiling, inBody].join(','));
});
</script>"""


def test_sorting_works_from_the_keyboard_and_keeps_the_ceiling_last(hostile_results, tmp_path) -> None:  # noqa: F811
    """Header cells were not focusable (the sorter listened to mouse clicks on th only), no sort
    state was exposed, and the in-domain ceiling row was sorted among the methods."""
    out = tmp_path / "board"
    make_board(hostile_results, out)
    html = (out / "index.html").read_text()
    assert '<tfoot>\n<tr class="ceiling">' in html and '<caption class="sr-only">' in html and '<th scope="col">' in html
    assert run_probe(tmp_path, html, KEYBOARD_PROBE, "data-probe", 1280)[0] == "true,ascending,1,0"


def test_a_heatmap_of_many_models_shrinks_to_a_phone_width(tmp_path) -> None:
    """The heatmap is 90 + 70 px per model wide and sat outside any scrolling box: six models
    (510 px) made a 375-px window scroll sideways. Its viewBox lets it shrink to the page."""
    from vwbench.leaderboard.html_page import render_html

    from .test_render_pins import board

    b = board()
    models = ["m1", "m2", "m3", "m4", "m5", "m6"]
    b["datasets"]["synth-x"]["grids"] = [{"method": "lstsq", "models": models, "cells": {
        s: {t: {"value": 0.1 * (i + j) % 1, "result": "r1", "in_domain": s == t} for j, t in enumerate(models)} for i, s in enumerate(models)}}]
    html = render_html(b)
    assert 'viewBox="0 0 510 360"' in html and ">source</text>" in html
    assert int(run_probe(tmp_path, html, MEASURE_OVERFLOW, "data-overflow", 375)[0]) <= 0
