"""Pins on how a leaderboard is written, on a hand-made board (no runs): README.md's cells, CIs,
ranks and table shapes, its escaping, the study and superseded sections; index.html's numbers,
heatmap cells and colours; the sample images embedded from beside a result."""

from __future__ import annotations

import base64
import io
import json
import os
import re

import pytest
from PIL import Image

from vwbench.errors import UserError
from vwbench.leaderboard import render_leaderboard

from vwbench.leaderboard.build import SCHEMA, fmt
from vwbench.leaderboard.collect import _samples
from vwbench.leaderboard.html_page import _colour, render_html
from vwbench.leaderboard.markdown import _render_table, _value, md_escape, render_markdown
from vwbench.results import schema

SHA = "0123456789abcdef" + "0" * 48


def record(task: str, transfer: str, value: float, **extra) -> dict:
    return {"file": f"synth-x/{task.replace('->', '-to-')}/{transfer}.json", "sha256": SHA, "task": task, "dataset": "synth-x",
            "transfer": transfer, "metric": "acc", "value": value, "ci95": [value - 0.05, value + 0.05], "steps": 1000, "n_trials": 3,
            "seed": 7, "samples": {}, "provenance": {"git_commit": None, "created": "2026-01-01T00:00:00+00:00", "checkpoints": []}, **extra}


def board() -> dict:
    """One dataset, two cross pairs (lstsq on both, knn on one), an in-domain ceiling, a study."""
    return {
        "schema": SCHEMA, "schema_version": 1, "name": "pins", "generated": "2026-01-01T00:00:00+00:00", "vwbench_version": "0.0.test",
        "datasets": {"synth-x": {
            "metrics": ["acc"], "cross_pairs": ["clip->owlv2", "owlv2->clip"],
            "summary": [
                {"method": "lstsq", "mean": 0.5, "n_pairs": 2, "values": {"clip->owlv2": 0.4, "owlv2->clip": 0.6}, "rank": 1},
                {"method": "knn", "mean": 0.3, "n_pairs": 1, "values": {"owlv2->clip": 0.3}, "rank": None},
            ],
            "pairs": {
                "clip->owlv2": {"source": "clip", "target": "owlv2", "metric": "acc",
                                "rows": [{"method": "lstsq", "value": 0.4, "ci95": [0.35, 0.45], "result": "r1", "rank": 1}],
                                "in_domain": {"method": "in-domain", "value": 0.9, "ci95": [0.85, 0.95], "result": "r3"}},
                "owlv2->clip": {"source": "owlv2", "target": "clip", "metric": "acc",
                                "rows": [{"method": "lstsq", "value": 0.6, "ci95": [0.55, 0.65], "result": "r2", "rank": 1},
                                         {"method": "knn", "value": 0.3, "ci95": [0.25, 0.35], "result": "r4", "rank": 2}],
                                "in_domain": None},
            },
            "grids": [{"method": "lstsq", "models": ["owlv2", "clip"], "cells": {
                "clip": {"owlv2": {"value": 0.4, "result": "r1", "in_domain": False}},
                "owlv2": {"owlv2": {"value": 0.9, "result": "r3", "in_domain": True}},
            }}],
        }},
        "studies": {"probe": {"interval": "95% bootstrap CI over concepts", "datasets": {"synth-x": {
            "metrics": ["acc"], "columns": ["b_col", "a_col"],
            "rows": [{"rank": 1, "task": "probe:clip", "method": "linear", "metric": "acc", "value": 0.8, "ci95": [0.7, 0.9],
                      "metrics": {"b_col": 0.25, "a_col": 0.75}, "result": "r5"}],
            "tables": {"r5": {"per_layer": {"columns": ["layer", "acc"], "rows": [{"layer": 1, "acc": 0.55}]}}},
        }}}},
        "results": {
            "r1": record("clip->owlv2", "lstsq", 0.4), "r2": record("owlv2->clip", "lstsq", 0.6),
            "r3": record("owlv2->owlv2", "identity", 0.9), "r4": record("owlv2->clip", "knn", 0.3),
            "r5": record("probe:clip", "linear", 0.8),
        },
        "skipped": [{"file": "bad.json", "reason": "<b>|x"}],
        "superseded": ["old.json", "short.json"],
        "superseded_by": [
            {"file": "old.json", "kept": "new.json", "why": "seed 1 vs 2", "differs": ["seed"]},
            {"file": "short.json", "kept": "new.json", "why": "fewer steps", "differs": []},
        ],
        "check": None,
    }


# ------------------------------------------------------------------ README.md


def test_fmt_and_md_escape() -> None:
    assert [fmt(v) for v in (0.12345, 1, None, float("nan"))] == ["0.123", "1.000", "–", "–"]
    assert md_escape("a\\|b") == "a\\\\\\|b"  # the backslash escaped too: `a\|b` must not end the cell at its pipe
    assert md_escape("~~gone~~") == "\\~\\~gone\\~\\~"  # no strikethrough from a method's name
    assert md_escape('say "x"') == "say &quot;x&quot;"


def cells(line: str) -> list[str]:
    """A markdown table row's cells (a backslash-escaped pipe is inside a cell)."""
    return re.split(r"(?<!\\)\|", line.strip())[1:-1]


def test_every_table_row_has_its_header_s_columns() -> None:
    lines = render_markdown(board()).splitlines()
    tables, current = [], []
    for line in lines + [""]:
        if line.startswith("|"):
            current.append(line)
        elif current:
            tables.append(current)
            current = []
    assert len(tables) == 6  # summary, two pairs, the study's, its per_layer table, provenance
    for table in tables:
        width = len(cells(table[0]))
        assert set(cells(table[1])) <= {"---", "---:"}, table[1]
        assert all(len(cells(row)) == width for row in table), table


def test_readme_cells_by_hand() -> None:
    lines = render_markdown(board()).splitlines()
    assert "| rank | method | mean | pairs | clip-&gt;owlv2 | owlv2-&gt;clip |" in lines
    assert "| 1 | lstsq | 0.500 | 2 | 0.400 | 0.600 |" in lines
    assert "| — | knn | 0.300 | 1 | – | 0.300 |" in lines  # unranked: a mean over fewer pairs
    assert "| 1 | lstsq | 0.400 [0.350, 0.450] <sub>r1</sub> |" in lines
    assert "| ceiling | in-domain (owlv2 word) | 0.900 [0.850, 0.950] <sub>r3</sub> |" in lines
    assert "| 2 | knn | 0.300 [0.250, 0.350] <sub>r4</sub> |" in lines
    assert ("| r1 | synth-x/clip-to-owlv2/lstsq.json | 0123456789abcdef | clip-&gt;owlv2 | synth-x | lstsq | 1000 | 3 | 7 | – "
            "| 2026-01-01T00:00:00+00:00 |") in lines
    assert "- bad.json: &lt;b&gt;\\|x" in lines


def test_readme_study_section() -> None:
    lines = render_markdown(board()).splitlines()
    assert "Value: the family's headline metric with its 95% bootstrap CI over concepts." in lines
    assert "| rank | task | method | value [95% CI] | b\\_col | a\\_col |" in lines
    assert "| 1 | probe:clip | linear | 0.800 [0.700, 0.900] <sub>r5</sub> | 0.250 | 0.750 |" in lines
    assert "| 1 | 0.550 |" in lines  # its own table: an int as it is, a float to 3 decimals


def test_readme_superseded_section() -> None:
    lines = render_markdown(board()).splitlines()
    assert "- **old.json replaced by new.json: seed 1 vs 2**" in lines  # another experiment: bold
    assert "- short.json replaced by new.json: fewer steps" in lines


def test_table_cells_and_row_limit() -> None:
    assert [_value(v) for v in (True, False, None, 0.0005, 0.5, 0.0, 3, "a|b")] == ["yes", "no", "–", "5.00e-04", "0.500", "0.000", "3", "a\\|b"]
    out = _render_table(["i"], [{"i": i} for i in range(41)])
    assert out[-2] == "| 39 |" and out[-1] == "\n(1 more rows in leaderboard.json)" and len(out) == 2 + 40 + 1


# ------------------------------------------------------------------ index.html


def test_heatmap_colours() -> None:
    assert _colour(0.0) == "#f7fbff" and _colour(1.0) == "#08306b"
    assert _colour(0.5) == "#8096b5"  # (247+8)/2 -> 128 (round half to even: 127.5 -> 128), 149.5 -> 150, 181
    assert _colour(1.7) == "#08306b" and _colour(-0.2) == "#f7fbff"  # clamped to [0, 1]
    assert _colour(None) == "#eeeeee"


def test_html_numbers_cells_and_anchors() -> None:
    page = render_html(board())
    # grid: models owlv2, clip; the clip row (y = 40 + 50) holds clip->owlv2 in the owlv2 column (x = 90)
    assert ('<rect class="cell" x="90" y="90" width="68" height="48" fill="' + _colour(0.4) + '"><title>clip-&gt;owlv2: 0.400 (r1)</title>') in page
    assert '<title>owlv2-&gt;clip: –</title>' in page and 'fill="#eeeeee"' in page  # no owlv2->clip lstsq cell: grey, no number
    assert 'fill="#ffffff">0.900</text>' in page and 'fill="#000000">0.400</text>' in page  # white text on dark cells only
    assert '<td class="num" data-sort="0.5">0.500</td>' in page  # the summary's mean, formatted
    assert '<td class="num" data-sort="0.55">0.550</td>' in page  # a study table's float, formatted
    assert '<td class="num" data-sort="1">1</td>' in page  # ... and its int as it is
    assert '<td class="num" data-sort="0.35">[0.350, 0.450]</td>' in page
    assert '<tr id="r1">' in page and '<a class="rid" href="#r1">r1</a>' in page
    assert "<code>0123456789abcdef</code>" in page


def test_html_escapes_a_sample_uri() -> None:
    b = board()
    b["results"]["r1"]["samples"] = {"circle": ['data:image/png;base64,AA"><script>x</script>']}
    page = render_html(b)
    assert '<img src="data:image/png;base64,AA&#34;&gt;&lt;script&gt;x&lt;/script&gt;" alt="circle, sample 1 of 1 (' in page


# ------------------------------------------------------------------ leaderboard.json


def test_leaderboard_json_is_sorted_strict_json(monkeypatch) -> None:
    data = render_leaderboard(board())["leaderboard.json"].decode()
    parsed = json.loads(data)
    assert list(parsed) == sorted(parsed) and list(parsed["results"]["r1"]) == sorted(parsed["results"]["r1"])  # stable diffs
    assert data.endswith("}\n") and data.startswith('{\n  "check": null,')
    # the guard's guard: were a NaN to pass the publishability check, the JSON writer still refuses it
    monkeypatch.setattr(schema, "unpublishable", lambda value, what="": None)
    b = board()
    b["datasets"]["synth-x"]["summary"][0]["mean"] = float("nan")
    with pytest.raises(UserError, match="cannot write the leaderboard: ValueError"):
        render_leaderboard(b)


# ------------------------------------------------------------------ sample images


def png(path, size=(8, 8), colour=(10, 200, 10)) -> None:
    Image.new("RGB", size, colour).save(path, format="PNG")


def test_samples_match_their_concept_are_capped_and_thumbnailed(tmp_path) -> None:
    result = tmp_path / "lstsq.json"
    folder = tmp_path / "lstsq.samples"
    folder.mkdir()
    png(folder / "cat-0.png", size=(200, 100))
    for i in range(1, 5):
        png(folder / f"cat-{i}.png")  # a fifth: over the 4 kept per concept
    png(folder / "dog.PNG")  # the concept's own name, any case of suffix
    png(folder / "doghouse-0.png")  # another concept's, though it starts with "dog"
    os.symlink(folder / "cat-1.png", folder / "dog-1.png")  # a link: never followed
    big = io.BytesIO()
    png(big)
    (folder / "dog-2.png").write_bytes(big.getvalue() + b"\0" * (10 * 2**20))  # over 10 MiB: not read
    samples = _samples(result, ["cat", "dog"])
    assert {concept: len(uris) for concept, uris in samples.items()} == {"cat": 4, "dog": 1}
    first = Image.open(io.BytesIO(base64.b64decode(samples["cat"][0].split(",", 1)[1])))
    assert first.format == "PNG" and first.size == (96, 48)  # re-encoded as a thumbnail of at most 96 px


def test_md_escape_breaks_bare_links_and_addresses() -> None:
    from vwbench.leaderboard.markdown import md_escape

    assert md_escape("https://evil.example/login") == "https\\://evil.example/login"
    assert md_escape("see www.evil.example") == "see www\\.evil.example"
    assert md_escape("me@evil.example") == "me\\@evil.example"
    assert md_escape("a:b awww.x lstsq") == "a:b awww.x lstsq"  # nothing else changes


def test_samples_of_a_concept_do_not_take_another_concepts_whose_name_extends_it(tmp_path) -> None:
    from PIL import Image

    from vwbench.leaderboard.collect import _samples

    result = tmp_path / "identity-abc.json"
    folder = result.with_suffix(".samples")
    folder.mkdir()
    for stem in ("a", "a-1", "a-b", "a-b-0"):
        Image.new("RGB", (4, 4)).save(folder / f"{stem}.png")
    found = _samples(result, ["a", "a-b"])
    assert len(found["a"]) == 2 and len(found["a-b"]) == 2
