"""`vwbench run --delta`, `vwbench delta-sweep` and `vwbench analyze ...` on tiny random models.

The numbers are meaningless (untrained models); what is checked is that the constraint holds on
real adapters, that results record it, and that every analysis writes its files.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from vwbench.cli import app
from vwbench.errors import UserError
from vwbench.results import read_result
from vwbench.results.words_store import load_wordset


def invoke(*args: str):
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result


def run(tiny_tasks: Path, out: Path, pair: str, *extra: str) -> Path:
    invoke("run", "--task", pair, "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(out), "--device", "cpu", *extra)
    files = sorted((out / "results").rglob("*.json"), key=lambda p: p.stat().st_mtime)
    return files[-1]


@pytest.fixture(scope="module")
def sd_run(tiny_tasks, tmp_path_factory) -> Path:
    return run(tiny_tasks, tmp_path_factory.mktemp("sd"), "sd->sd")


def _source(tiny_tasks):
    from vwbench.models.clip import OpenClipAdapter

    return OpenClipAdapter.from_pretrained(tiny_tasks.parent / "clip")


def test_delta_zero_run_keeps_the_anchor_and_records_it(tiny_tasks, tmp_path):
    path = run(tiny_tasks, tmp_path, "clip->clip", "--delta", "0", "--anchors", "square=ring")
    result = read_result(path)
    assert result.fracture["delta"] == 0.0
    assert result.fracture["anchors"] == {"circle": "circle", "square": "ring", "triangle": "triangle"}
    assert result.fracture["anchor_facts"]["ring"]["radius"] == 0.0
    words = load_wordset(Path(result.provenance.words_file))
    anchors = [result.fracture["anchors"][c] for c in words.concepts]
    expected = _source(tiny_tasks).token_vectors(anchors)
    assert torch.equal(words.vectors, expected[:, None].expand_as(words.vectors))


def test_delta_run_stays_in_the_normalised_ball(tiny_tasks, tmp_path):
    result = read_result(run(tiny_tasks, tmp_path, "clip->owlv2", "--delta", "0.5", "--steps", "3"))
    words = load_wordset(Path(result.provenance.words_file))
    source = _source(tiny_tasks)
    facts = result.fracture["anchor_facts"]
    anchors = [result.fracture["anchors"][c] for c in words.concepts]
    units = torch.tensor([facts[a]["unit_distance"] for a in anchors])
    ratio = (words.vectors - source.token_vectors(anchors)[:, None]).norm(dim=-1) / units[:, None]
    assert ratio.max() <= 0.5 + 1e-5
    # an ordinary run of the same task is a different result (the words' cache key differs)
    plain = read_result(run(tiny_tasks, tmp_path, "clip->owlv2", "--steps", "3"))
    assert plain.fracture is None and plain.provenance.words_file != result.provenance.words_file


def test_a_delta_that_is_not_a_finite_number_is_refused(tiny_tasks, tmp_path):
    for bad in ("nan", "0.5,inf"):
        res = CliRunner().invoke(app, ["delta-sweep", "--task", "clip->clip", "--dataset", "synth-tiny", "--deltas", bad, "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path)])
        assert res.exit_code != 0 and "finite numbers >= 0" in str(res.exception), res.output
    from vwbench.errors import UserError
    from vwbench.training.fracture import ball

    with pytest.raises(UserError, match="finite number >= 0"):
        ball(None, torch.zeros(1, 4), ["circle"], float("nan"))


def test_anchors_without_delta_is_one_line_error(tiny_tasks, tmp_path):
    result = CliRunner().invoke(app, ["run", "--task", "clip->clip", "--dataset", "synth-tiny", "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path / "out"), "--anchors", "ring"])
    assert result.exit_code != 0 and isinstance(result.exception, UserError), result.exception
    message = str(result.exception)
    assert "\n" not in message and "--anchors" in message and "--delta" in message, message
    assert not (tmp_path / "out").exists()


def test_delta_sweep_writes_table_and_plot(tiny_tasks, tmp_path):
    out = invoke(
        "delta-sweep", "--task", "clip->clip", "--task", "clip->owlv2", "--dataset", "synth-tiny", "--deltas", "0.1,1.0",
        "--steps", "2", "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path), "--device", "cpu",
    ).output
    stem = tmp_path / "sweeps" / "synth-tiny" / "delta-clip-to-clip_clip-to-owlv2"
    data = json.loads(stem.with_suffix(".json").read_text())
    assert [(r["task"], r["delta"]) for r in data["rows"]] == [("clip->clip", 0.1), ("clip->clip", 1.0), ("clip->owlv2", 0.1), ("clip->owlv2", 1.0)]
    for row in data["rows"]:
        assert read_result(Path(row["result"])).fracture["delta"] == row["delta"]
        assert 0.0 <= row["ci_low"] <= row["value"] <= row["ci_high"] <= 1.0
    table = stem.with_suffix(".md").read_text()
    assert "delta 0.1" in table and "| clip->owlv2 | map |" in table and "delta 0.1" in out
    assert stem.with_suffix(".png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # both deltas of clip->owlv2 reused the words clip->clip trained
    assert len(list((tmp_path / "words").rglob("*.safetensors"))) == 2


def test_delta_sweeps_with_other_deltas_add_to_one_table(tiny_tasks, tmp_path):
    """A later delta sweep of the same tasks with other deltas used to replace the earlier one's
    table: the table now lists every delta stored with the same settings."""
    args = ("delta-sweep", "--task", "clip->clip", "--dataset", "synth-tiny", "--steps", "2", "--trials", "1",
            "--tasks-dir", str(tiny_tasks), "--out", str(tmp_path), "--device", "cpu", "--threads", "1")
    stem = tmp_path / "sweeps" / "synth-tiny" / "delta-clip-to-clip"
    invoke(*args, "--deltas", "0.1,1.0")
    out = invoke(*args, "--deltas", "0.5").output
    rows = json.loads(stem.with_suffix(".json").read_text())["rows"]
    assert [(r["task"], r["delta"]) for r in rows] == [("clip->clip", 0.1), ("clip->clip", 0.5), ("clip->clip", 1.0)]
    assert all(read_result(Path(r["result"])).fracture["delta"] == r["delta"] for r in rows)
    assert "| delta 0.1 | delta 0.5 | delta 1 |" in stem.with_suffix(".md").read_text()
    assert "2 stored result(s) of other deltas" in out and json.loads(out.strip().splitlines()[-1])["json"] == str(stem.with_suffix(".json"))

    # other settings (here the anchors) make another table under the same name: it says what it leaves out
    out = invoke(*args, "--deltas", "0.5", "--anchors", "ring").output
    rows = json.loads(stem.with_suffix(".json").read_text())["rows"]
    assert [r["delta"] for r in rows] == [0.5] and read_result(Path(rows[0]["result"])).fracture["anchors"]["circle"] == "ring"
    assert "listed 3 result(s) that the new table leaves out" in " ".join(out.split())
    assert len(list((tmp_path / "results").rglob("*.json"))) == 4  # every result is kept


def test_analyze_neighbors(tiny_tasks, tmp_path):
    result = run(tiny_tasks, tmp_path, "clip->owlv2", "--steps", "0")
    out = invoke("analyze", "neighbors", "--result", str(result), "--k", "3", "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", str(tmp_path / "nb")).output
    report = json.loads((tmp_path / "nb.json").read_text())
    words = report[0]["words"]
    assert len(words) == 6 and len(words[0]["source"]) == 4 and len(words[0]["source"][0]) == 3
    # 0 steps: each word is still its init word's embedding, so that word is its nearest (distance 0)
    for w in words:
        assert all(vec[0] == [w["init_word"], 0.0] for vec in w["source"])
    assert "circle trial 0 (init circle)" in out


def test_analyze_neighbors_maps_words_as_the_run_did(tiny_tasks, tmp_path):
    """The anchor transfer maps each word to its concept's init word in the target: the analysis
    must rebuild it as `vwbench run` did (it used to fail without the init words)."""
    result = run(tiny_tasks, tmp_path, "clip->owlv2", "--steps", "0", "--transfer", "anchor")
    invoke("analyze", "neighbors", "--result", str(result), "--k", "1", "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", str(tmp_path / "nb"))
    words = json.loads((tmp_path / "nb.json").read_text())[0]["words"]
    init = {w["concept"]: w["init_word"] for w in words if w["trial"] == 0}  # trial 0 starts at the concept's init word
    for w in words:
        assert all(vec[0] == [init[w["concept"]], 0.0] for vec in w["target"])


def test_analyze_neighbors_reads_the_embeddings_a_run_evaluated(tiny_tasks, tmp_path):
    from tests.submissions.helpers import embeddings

    clip = _source(tiny_tasks)
    vocab = clip.vocabulary()
    concepts = ("circle", "square", "triangle")
    words = {c: clip.token_vectors([c]).repeat(4, 1) for c in concepts}  # each vector is the concept's own token
    path = embeddings(tmp_path / "words.safetensors", words, vocab_hash=vocab.hash())
    result = run(tiny_tasks, tmp_path, "clip->owlv2", "--embeddings", str(path))
    invoke("analyze", "neighbors", "--result", str(result), "--k", "1", "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", str(tmp_path / "nb"))
    report = json.loads((tmp_path / "nb.json").read_text())[0]["words"]
    assert [w["concept"] for w in report] == list(concepts)
    assert all(vec[0] == [w["concept"], 0.0] for w in report for vec in w["source"])


def test_analyze_truncation(tiny_tasks, sd_run, tmp_path):
    invoke("analyze", "truncation", "--result", str(sd_run), "--generations", "1", "--inference-steps", "2", "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", str(tmp_path / "tr"))
    data = json.loads((tmp_path / "tr.json").read_text())
    assert data["blocks"] == 2 and [r["layers"] for r in data["rows"]] == [1, 2]
    assert all(0.0 <= r["accuracy"] <= 1.0 and set(r["per_concept"]) == {"circle", "square", "triangle"} for r in data["rows"])
    assert (tmp_path / "tr.png").read_bytes()[:4] == b"\x89PNG"


def test_truncation_changes_the_text_states(tiny_tasks):
    from vwbench.analysis.layers import pooled_activations, truncated
    from vwbench.models.sd import StableDiffusionAdapter

    sd = StableDiffusionAdapter.from_pretrained(tiny_tasks.parent / "sd")
    vectors = sd.token_vectors(["circle", "square"])[:, None].expand(-1, 4, -1)
    full, eos = sd.encode_word_states(vectors)
    with truncated(sd, 1):
        one, _ = sd.encode_word_states(vectors)
    assert len(sd._text.encoder.layers) == 2  # restored
    assert not torch.allclose(full, one)
    # the hook's block-2 activation, normalised, is the full encoder's output
    acts = pooled_activations(sd, vectors, [1, 2])
    final = sd._text.final_layer_norm(torch.from_numpy(acts[2]))
    torch.testing.assert_close(final, full[:, eos])


def test_analyze_tsne(tiny_tasks, sd_run, tmp_path):
    out = invoke("analyze", "tsne", "--result", str(sd_run), "--tasks-dir", str(tiny_tasks), "--device", "cpu", "--out", str(tmp_path / "ts")).output
    data = json.loads((tmp_path / "ts.json").read_text())
    assert data["blocks"] == 2 and set(data["points"]) == {"1", "2"}
    assert all(len(p) == 6 and len(p[0]) == 2 for p in data["points"].values())
    assert len(data["concepts"]) == len(data["anchors"]) == 6
    assert (tmp_path / "ts.png").read_bytes()[:4] == b"\x89PNG" and "6 words" in out


def test_layer_analysis_needs_sd(tiny_tasks, tmp_path):
    result = run(tiny_tasks, tmp_path, "clip->owlv2", "--steps", "0")
    res = CliRunner().invoke(app, ["analyze", "tsne", "--result", str(result), "--tasks-dir", str(tiny_tasks), "--device", "cpu"])
    assert res.exit_code != 0 and "generation model" in str(res.exception)


def test_a_table_made_from_another_folder_is_not_said_to_lose_its_rows(tmp_path, monkeypatch):
    """The earlier table's result paths are relative to where that run started: the same results,
    named from another working folder, are the same rows."""
    from vwbench.analysis.sweep import SweepRow, rows_to_json
    from vwbench.commands.fracture import _left_out

    names = ["clip-to-clip/identity-aaaa.json", "clip-to-clip/identity-bbbb.json"]
    table = tmp_path / "delta.json"
    table.write_text(json.dumps({"rows": rows_to_json([SweepRow("clip->clip", "synth-tiny", d, "acc", 0.5, 0.4, 0.6, f"runs/results/synth-tiny/{n}") for d, n in zip((0.1, 0.5), names)])}))
    monkeypatch.chdir(tmp_path)
    now = [SweepRow("clip->clip", "synth-tiny", d, "acc", 0.5, 0.4, 0.6, f"ds/runs/results/synth-tiny/{n}") for d, n in zip((0.1, 0.5), names)]
    assert _left_out(table, now) == 0
    assert _left_out(table, now[:1]) == 1
