"""`vwbench leaderboard` on results of real tiny-model runs: tables, ranks, provenance, escaping."""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import shutil
from pathlib import Path

import pytest
from PIL import Image
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.leaderboard.markdown import md_escape

from .conftest import BASELINES, CROSS

EVIL = "<script>document.body.setAttribute('data-pwned','1')</script>"


def make_board(results: Path, out: Path, *extra: str) -> dict:
    res = CliRunner().invoke(app, ["leaderboard", "--results", str(results), "--out", str(out), *extra])
    assert res.exit_code == 0, res.output
    return json.loads((out / "leaderboard.json").read_text())


@pytest.fixture(scope="module")
def hostile_results(tiny_results, tmp_path_factory) -> Path:
    """The tiny results plus a result naming its transfer <script>, sample images, and junk files."""
    root = tmp_path_factory.mktemp("hostile") / "results"
    shutil.copytree(tiny_results / "results", root)
    lstsq = sorted(p for p in root.rglob("lstsq-*.json") if "clip-to-owlv2" in str(p))[0]
    payload = json.loads(lstsq.read_text())
    payload["transfer"] = EVIL
    payload["per_concept"] = {f"{k}<img src=x onerror=alert(1)>": v for k, v in payload["per_concept"].items()}
    (lstsq.parent / "evil.json").write_text(json.dumps(payload))
    fractured = {**json.loads(lstsq.read_text()), "value": 0.999, "fracture": {"delta": 0.25, "anchors": {}}}
    fractured["provenance"] = {**fractured["provenance"], "created": "2999-01-01T00:00:00+00:00"}  # newest: would win its unit
    (lstsq.parent / "fractured.json").write_text(json.dumps(fractured))
    (lstsq.parent / "nan.json").write_text(json.dumps({**json.loads(lstsq.read_text()), "value": float("nan")}))
    (root / "deep.json").write_text("[" * 100_000)
    (root / "junk.json").write_text("{not json")
    (root / "pickle.json").write_bytes(b"\x80\x04\x95")
    (root / "other-schema.json").write_text(json.dumps({"schema_version": 99}))
    samples = lstsq.with_suffix(".samples")
    samples.mkdir()
    Image.new("RGB", (32, 32), (200, 30, 30)).save(samples / "circle-0.png")
    (samples / "square-0.png").write_bytes(b"not an image")
    return root


def test_leaderboard_tables_ranks_and_provenance(tiny_results, tmp_path) -> None:
    out = tmp_path / "board"
    board = make_board(tiny_results / "results", out, "--name", "tiny")
    assert {p.name for p in out.iterdir()} == {"README.md", "leaderboard.json", "index.html"}
    assert board["schema"] == "vwbench.leaderboard/1" and board["schema_version"] == 1 and board["name"] == "tiny"
    ds = board["datasets"]["synth-tiny"]
    assert ds["cross_pairs"] == ["owlv2->clip", "clip->owlv2"]  # families in sd, owlv2, clip order
    for task in CROSS:
        pair = ds["pairs"][task]
        assert [r["method"] for r in pair["rows"]] and {r["method"] for r in pair["rows"]} == set(BASELINES)
        values = [r["value"] for r in pair["rows"]]
        assert values == sorted(values, reverse=True)  # rows in rank order
        assert pair["rows"][0]["rank"] == 1 and all(r["rank"] >= 1 for r in pair["rows"])
        for r in pair["rows"]:  # competition ranking: 1 + how many are strictly better
            assert r["rank"] == 1 + sum(v > r["value"] for v in values)
        target = task.split("->")[1]
        ceiling = pair["in_domain"]
        assert ceiling["method"] == "in-domain" and board["results"][ceiling["result"]]["task"] == f"{target}->{target}"
    # every number cites a result whose file and sha256 are real
    results_dir = tiny_results / "results"
    for rid, r in board["results"].items():
        data = (results_dir / r["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == r["sha256"]
        assert json.loads(data)["value"] == r["value"]
        assert r["provenance"]["checkpoints"] and r["provenance"]["created"]
    summary = {row["method"]: row for row in ds["summary"]}
    assert set(summary) == set(BASELINES) | {"in-domain"}
    lstsq = summary["lstsq"]
    assert lstsq["mean"] == pytest.approx(sum(lstsq["values"].values()) / 2) and lstsq["n_pairs"] == 2
    grid = ds["grids"][0]
    assert grid["method"] == "lstsq" and grid["models"] == ["owlv2", "clip"]
    assert grid["cells"]["clip"]["owlv2"]["value"] == next(r["value"] for r in ds["pairs"]["clip->owlv2"]["rows"] if r["method"] == "lstsq")
    assert grid["cells"]["clip"]["clip"]["in_domain"] is True
    readme = (out / "README.md").read_text()
    assert "## synth-tiny" in readme and "### synth-tiny: clip-&gt;owlv2" in readme and "| ceiling | in-domain" in readme
    assert re.search(r"\| 1 \| \w+ \| \d\.\d{3} \[\d\.\d{3}, \d\.\d{3}\] <sub>r\d+</sub> \|", readme)


def test_hostile_results_are_escaped_or_skipped(hostile_results, tmp_path) -> None:
    """Junk, foreign, NaN-valued and too-deeply nested files are skipped, and so is a fracturing
    run (words held near an anchor): it is not the method's score, however new it is."""
    out = tmp_path / "board"
    lstsq_rel = str(sorted(p for p in hostile_results.rglob("lstsq-*.json") if "clip-to-owlv2" in str(p))[0].relative_to(hostile_results))
    board = make_board(hostile_results, out)
    skipped = {s["file"]: s["reason"] for s in board["skipped"]}
    fractured, nan = (str(Path(lstsq_rel).parent / name) for name in ("fractured.json", "nan.json"))
    assert set(skipped) == {"junk.json", "pickle.json", "other-schema.json", "deep.json", fractured, nan}
    assert "schema version 99" in skipped["other-schema.json"]
    assert "delta-constrained" in skipped[fractured] and "not a finite number" in skipped[nan]
    original = json.loads((hostile_results / lstsq_rel).read_text())["value"]
    assert [r["value"] for r in board["results"].values() if r["transfer"] == "lstsq" and r["task"] == "clip->owlv2"] == [original]
    assert any(r["transfer"] == EVIL for r in board["results"].values())  # kept as data...
    page = (out / "index.html").read_text()
    readme = (out / "README.md").read_text()
    for text in (page, readme):  # ...but shown only as text
        assert "<script>document" not in text and "<img src=x" not in text
    # HTML entities, and markdown's link parentheses backslash-escaped (see test_md_escape_neutralises_markup)
    assert "&lt;script&gt;document.body.setAttribute\\(&#x27;data-pwned&#x27;,&#x27;1&#x27;\\)&lt;/script&gt;" in readme
    assert "&lt;script&gt;document.body.setAttribute(&#39;data-pwned&#39;,&#39;1&#39;)&lt;/script&gt;" in page
    assert page.count("<script>") == 1  # the page's own sorter, allowed by hash in the CSP
    # the CSP (as the browser reads the attribute: entities decoded) allows exactly the page's script
    csp = html.unescape(re.search(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page).group(1))
    script = re.search(r"<script>(.*?)</script>", page, re.S).group(1)
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp and "default-src 'none'" in csp
    # sample generations: the valid image re-encoded inline, the fake one dropped
    evil = next(r for r in board["results"].values() if r["transfer"] == EVIL)
    assert evil["samples"] == {}  # its concepts were renamed, so no sample file matches them
    lstsq = next(r for r in board["results"].values() if r["transfer"] == "lstsq" and r["task"] == "clip->owlv2")
    assert list(lstsq["samples"]) == ["circle"] and lstsq["samples"]["circle"][0].startswith("data:image/png;base64,")
    assert "Sample generations" in page and lstsq["samples"]["circle"][0] in page


def test_a_method_missing_a_pair_is_listed_unranked(tiny_results, tmp_path) -> None:
    """Its mean is over fewer pairs, so it is not ranked against the methods that ran them all."""
    results = tmp_path / "results"
    shutil.copytree(tiny_results / "results", results)
    for path in results.rglob("procrustes-*.json"):
        if "owlv2-to-clip" in str(path):
            path.unlink()
    out = tmp_path / "board"
    summary = make_board(results, out)["datasets"]["synth-tiny"]["summary"]
    methods = [row for row in summary if not row.get("ceiling")]
    partial = methods[-1]
    assert partial["method"] == "procrustes" and partial["n_pairs"] == 1 and partial["rank"] is None
    ranked = [row for row in summary if row["rank"] is not None]
    assert len(ranked) == len(methods) - 1 and all(row["n_pairs"] == 2 for row in ranked)
    assert any(line.startswith("| — | procrustes |") for line in (out / "README.md").read_text().splitlines())
    assert summary[-1]["ceiling"] and any(line.startswith("| ceiling | in-domain |") for line in (out / "README.md").read_text().splitlines())
    html = (out / "index.html").read_text()
    assert '<tfoot>\n<tr class="ceiling"><td>ceiling</td><td>in-domain</td>' in html


def test_md_escape_neutralises_markup() -> None:
    assert md_escape("a|b") == "a\\|b"
    assert md_escape("[x](javascript:alert(1))") == "\\[x\\]\\(javascript:alert\\(1\\)\\)"
    assert md_escape("<b>\n*x*") == "&lt;b&gt; \\*x\\*"


def test_empty_or_missing_results_is_a_one_line_error(tmp_path, monkeypatch, capsys) -> None:
    import sys

    from vwbench.cli import main

    empty = tmp_path / "empty"
    empty.mkdir()
    for folder, message in ((empty, "no valid result files found"), (tmp_path / "missing", "not a folder")):
        monkeypatch.setattr(sys, "argv", ["vwbench", "leaderboard", "--results", str(folder), "--out", str(tmp_path / "o")])
        with pytest.raises(SystemExit) as exit_info:
            main()
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, err
        assert err.count("\n") == 1 and err.startswith(f"error: --results {folder}: {message}"), err
    assert not (tmp_path / "o").exists()
