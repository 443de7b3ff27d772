"""Pins on the zoo's card (``zoo.md``), manifests and hash checks, and the training stream's
captions, on hand-made logs and folders (nothing is trained): each number in its unit and
precision, the target verdicts at their boundaries, which files a manifest covers, and that a
built checkpoint is hash-checked and swapped in whole."""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import Future

import pytest

from vwbench.errors import UserError
from vwbench.leaderboard.build import SCHEMA
from vwbench.zoo import build, report
from vwbench.zoo.manifest import write_manifest
from vwbench.zoo.report import _curves, _quality_lines, _size_mb, _target_lines, _wall_time, _word_lines, write_zoo_report
from vwbench.zoo.vocabulary import PROMPT_WORDS, WORLD_WORDS, zoo_words
from vwbench.zoo.world_stream import caption_for

SHA_A = "ca978112ca1bbdcafac231b39a23dc4da786eff8147c4e72b9807785afee48bb"  # sha256(b"a")
SHA_B = "3e23e8160039594a33894f6564e1b1348bbd7a0088d42c4acb73eeaed59c009d"  # sha256(b"b")


# ------------------------------------------------------------------ the card's numbers


def test_targets_are_met_at_exactly_the_minimum() -> None:
    logs = {"mini-clip": {"quality": {"synth-voc": 0.90, "synth-coco": 0.8999}},
            "mini-owlv2": {"quality": {"datasets": {"synth-coco": {"map": 0.30, "map50": 0.75}}}},
            "mini-sd": {"quality": {"datasets": {"synth-voc": {"accuracy": 0.8}}}}}
    lines = _target_lines(logs)
    assert "| mini-clip | zero-shot accuracy | synth-voc | >= 0.90 | 0.900 | yes |" in lines
    assert "| mini-clip | zero-shot accuracy | synth-coco | >= 0.90 | 0.8999 | **no** |" in lines  # not rounded up to the target it misses
    # the detector's target is on mAP@.5, not on mAP over .50:.95
    assert "| mini-owlv2 | mAP@.5, class names as queries | synth-coco | >= 0.70 | 0.750 | yes |" in lines
    assert "| mini-sd | judge accuracy of 'a photo of {name}' | synth-voc | >= 0.80 | 0.800 | yes |" in lines


def test_quality_tables_to_three_decimals() -> None:
    assert _quality_lines("mini-clip", {"synth-voc": 0.93456})[1] == "| synth-voc | 0.935 |"
    assert _quality_lines("mini-sd", {"datasets": {"synth-voc": {"accuracy": 0.3754}}})[1] == "| synth-voc | 0.375 |"
    owl = _quality_lines("mini-owlv2", {"datasets": {"synth-coco": {"map": 0.3333, "map50": 0.5555, "region_recall50": 0.8}}})
    assert owl[1] == "| synth-coco | 0.333 | 0.555 | 0.800 |"  # mAP, then mAP@.5
    assert _quality_lines("mini-clip", None) == ["- quality: not recorded"]


def word_board(sd_value: float) -> dict:
    results = {"r0": {"metric": "generation_accuracy", "value": sd_value, "ci95": [sd_value - 0.1, sd_value + 0.1]},
               "r1": {"metric": "generation_accuracy", "value": 0.2, "ci95": [0.1, 0.3]}}
    cells = {"sd": {"sd": {"result": "r0", "value": sd_value}}, "clip": {"sd": {"result": "r1", "value": 0.2}}}
    return {"schema": SCHEMA, "datasets": {"synth-voc": {"grids": [{"method": "lstsq", "cells": cells}]}}, "results": results}


def test_word_target_is_met_at_exactly_the_minimum() -> None:
    lines = _word_lines(word_board(0.8))
    assert "| sd->sd | generation accuracy | synth-voc | >= 0.80 | 0.800 [0.700, 0.900] | yes |" in lines
    assert "| synth-voc | sd | 0.800 | 0.200 (1) | 25% | - | - |" in lines  # 0.2 of 0.8


def test_wall_time_in_minutes_from_any_recorded_key() -> None:
    assert _wall_time({"wall_s": {"total": 600.0}}) == "10.0 min"
    assert _wall_time({"wall_time_s": {"total_s": 90.0}}) == "1.5 min"
    assert _wall_time({"phases_wall_s": {"train": 1.0, "total": 45.0}}) == "0.8 min"  # 0.75 -> 0.8
    assert _wall_time({"wall_s": 12.0}) == "not recorded"


def test_size_in_decimal_megabytes(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "weights.bin").write_bytes(b"\0" * 2_000_000)
    (tmp_path / "sub" / "more.bin").write_bytes(b"\0" * 500_000)
    assert _size_mb(tmp_path) == 2.5  # 2,500,000 bytes: 2.5 MB (2.38 MiB)


def test_curves_are_only_step_value_pairs() -> None:
    assert _curves({"a": [[0, 1.0, 2.0]], "b": [[0, 1.0], [5, 0.5]], "c": []}) == {"b": [[0, 1.0], [5, 0.5]]}


@pytest.fixture
def quick_card(monkeypatch, tmp_path):
    """write_zoo_report without drawing (the world strip and the curves are other tests' business)."""
    monkeypatch.setattr(report, "_world_samples", lambda out: None)
    monkeypatch.setattr(report, "_plot_curves", lambda name, curves, out: None)
    monkeypatch.setenv("VWBENCH_ZOO_BUILD", str(tmp_path / "build"))
    return tmp_path


def test_card_sizes_parameters_and_total(quick_card) -> None:
    tmp = quick_card
    clip = tmp / "zoo" / "mini-clip"
    clip.mkdir(parents=True)
    (clip / "training_log.json").write_text(json.dumps({"parameters": {"tower": 1_000_000, "head": 500_000}, "threads": 1}))
    (clip / "weights.bin").write_bytes(b"\0" * 1_200_000)
    text_tower = tmp / "build" / "mini-sd-text"
    text_tower.mkdir(parents=True)
    (text_tower / "training_log.json").write_text(json.dumps({"parameters": 3_430_000}))
    (text_tower / "weights.bin").write_bytes(b"\0" * 5_000_000)
    text = write_zoo_report(tmp / "board", tmp / "zoo", names=["mini-clip", "mini-sd-text"]).read_text()
    lines = text.splitlines()
    clip_size = _size_mb(clip)
    assert f"| mini-clip | 1.50M | {clip_size:.1f} | not recorded | 1 |" in lines  # a dict of parameter counts: their sum
    assert any(line.startswith("| mini-sd-text | 3.43M | 5.0 (not shipped) |") for line in lines)
    assert f"Total size: {clip_size:.1f} MB." in text  # the unshipped model is not part of the zoo's size
    assert not text.count("5.0 MB") and f"{clip_size + 5.0:.1f} MB" not in text


def test_a_model_recorded_by_another_is_only_the_one_it_names(quick_card) -> None:
    tmp = quick_card
    sd = tmp / "zoo" / "mini-sd"
    sd.mkdir(parents=True)
    (sd / "training_log.json").write_text(json.dumps({
        "text_tower": {"folder": "mini-sd-text", "weights_sha256": "cb05c213e5e3" + "0" * 52, "zero_shot_accuracy": {"synth-voc": 0.884}},
    }))
    text = write_zoo_report(tmp / "board", tmp / "zoo", names=["mini-judge"]).read_text()
    section = text.split("## mini-judge", 1)[1]
    assert "Not built: `vwbench zoo train --only mini-judge`" in section and "recorded" not in section and "0.884" not in section


def test_a_not_built_section_of_the_previous_card_is_written_afresh(quick_card) -> None:
    """Only what a build wrote is carried over from the previous card: a "Not built" section is
    recomputed, so the numbers another model's log records for it are the current ones."""
    tmp = quick_card
    sd = tmp / "zoo" / "mini-sd"
    sd.mkdir(parents=True)

    def card(accuracy: float) -> str:
        (sd / "training_log.json").write_text(json.dumps({
            "text_tower": {"folder": "mini-sd-text", "weights_sha256": "ab" * 32, "zero_shot_accuracy": {"synth-voc": accuracy}},
        }))
        text = write_zoo_report(tmp / "board", tmp / "zoo", names=["mini-sd-text"]).read_text()
        return text.split("## mini-sd-text", 1)[1]

    assert "| synth-voc | 0.884 |" in card(0.884)
    again = card(0.912)  # mini-sd retrained on another tower
    assert "| synth-voc | 0.912 |" in again and "0.884" not in again


def test_measured_quality_drops_what_the_card_no_longer_shows(quick_card) -> None:
    tmp = quick_card
    (tmp / "zoo" / "mini-clip").mkdir(parents=True)
    (tmp / "zoo" / "mini-clip" / "training_log.json").write_text(json.dumps({"parameters": 1000}))
    (tmp / "board" / "zoo").mkdir(parents=True)
    (tmp / "board" / "zoo" / "quality.json").write_text(json.dumps({"mini-owlv2": {"datasets": {}}}))  # no card beside it
    measured = {"mini-clip": {"synth-voc": 0.95}}
    write_zoo_report(tmp / "board", tmp / "zoo", names=["mini-clip"], measured=measured)
    assert json.loads((tmp / "board" / "zoo" / "quality.json").read_text()) == measured


# ------------------------------------------------------------------ manifests and hash checks


def test_manifest_covers_every_file_below_by_relative_path(tmp_path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "a.bin").write_bytes(b"a")
    (tmp_path / "sub" / "b.bin").write_bytes(b"b")
    (tmp_path / ".a.bin.tmp").write_bytes(b"half written")  # an atomic write's temporary file
    (tmp_path / "manifest.json").write_text("{}")
    path = write_manifest(tmp_path, extra={"source": "test"})
    assert json.loads(path.read_text()) == {"files": {"a.bin": SHA_A, "sub/b.bin": SHA_B}, "source": "test"}
    assert hashlib.sha256(b"a").hexdigest() == SHA_A


def damaged_text_tower(build_dir) -> None:
    folder = build_dir / "mini-sd-text"
    folder.mkdir(parents=True)
    (folder / "model.safetensors").write_bytes(b"a")
    write_manifest(folder)
    (folder / "model.safetensors").write_bytes(b"b")  # changed after its manifest


def test_an_unshipped_checkpoint_built_here_is_hash_checked(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VWBENCH_ZOO_BUILD", str(tmp_path / "build"))
    damaged_text_tower(tmp_path / "build")
    with pytest.raises(UserError, match="model.safetensors has sha256 3e23e8160039"):
        build.verify_zoo()  # every entry: the shipped ones and the one built here
    with pytest.raises(UserError, match="model.safetensors has sha256 3e23e8160039"):
        build.verify_zoo(only=["mini-sd-text"])


def test_a_named_unshipped_checkpoint_not_built_here_is_an_error(tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("VWBENCH_ZOO_BUILD", str(tmp_path / "empty"))
    with pytest.raises(UserError, match="mini-sd-text is not shipped and was not built here"):
        build.verify_zoo(only=["mini-sd-text"])


def test_swap_in_replaces_the_old_checkpoint_whole(tmp_path) -> None:
    final, tmp = tmp_path / "mini-x", tmp_path / ".mini-x.partial"
    final.mkdir()
    (final / "old.bin").write_bytes(b"old")
    tmp.mkdir()
    (tmp / "new.bin").write_bytes(b"new")
    build._swap_in(tmp, final)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mini-x"]  # no .partial, no .old left
    assert [p.name for p in final.iterdir()] == ["new.bin"]


def test_select_keeps_the_zoo_order_and_suggests_names() -> None:
    # trained one after another in this order: mini-sd must come after the text tower it is built on
    assert [e.name for e in build._select(["mini-sd", "mini-sd-text", "mini-clip"])] == ["mini-clip", "mini-sd-text", "mini-sd"]
    with pytest.raises(UserError, match=r"did you mean mini-clip\?"):
        build._select(["clip"])


def test_parallel_training_shares_the_cpu_threads(tmp_path, monkeypatch) -> None:
    submitted = []

    class Pool:
        def __init__(self, max_workers, mp_context):
            self.max_workers = max_workers

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

        def shutdown(self, wait=True, cancel_futures=False):
            pass

        def submit(self, fn, name, root, threads):
            submitted.append((name, threads))
            done = Future()
            done.set_result({"name": name})
            return done

    monkeypatch.setattr(build, "ProcessPoolExecutor", Pool)
    monkeypatch.setattr(build.os, "cpu_count", lambda: 8)
    logs = []
    out = build.train_zoo(tmp_path / "zoo", only=["mini-clip", "mini-owlv2"], log=logs.append, jobs=2)
    assert out == {"mini-clip": {"name": "mini-clip"}, "mini-owlv2": {"name": "mini-owlv2"}}
    assert sorted(submitted) == [("mini-clip", 4), ("mini-owlv2", 4)]  # 8 threads over 2 jobs
    assert logs == ["training 2 models, 2 at a time on 4 thread(s) each"]


# ------------------------------------------------------------------ the training stream


class FixedDraw:
    def __init__(self, value: float):
        self.value = value

    def random(self) -> float:
        return self.value


def test_captions_by_draw() -> None:
    assert caption_for("circle", None, None, FixedDraw(0.3)) == "a photo of circle"
    assert caption_for("circle", "red", None, FixedDraw(0.6)) == "a photo of a red circle"
    assert caption_for("circle", None, "dots", FixedDraw(0.6)) == "a photo of a dotted circle"  # no colour: the pattern
    assert caption_for("circle", "red", None, FixedDraw(0.9)) == "a photo of a plain circle"
    assert caption_for("circle", "red", "checker", FixedDraw(0.9)) == "a photo of a checkered circle"
    assert caption_for("bluestar", "blue", "dots", FixedDraw(0.6)) == "a photo of bluestar"  # an instance: its name


def test_zoo_words_are_unique_with_the_prompt_and_world_words_first() -> None:
    words = zoo_words()
    assert len(words) == len(set(words))
    assert words[: len(PROMPT_WORDS)] == PROMPT_WORDS
    assert words[len(PROMPT_WORDS): len(PROMPT_WORDS) + len(WORLD_WORDS)] == [w for w in WORLD_WORDS if w not in PROMPT_WORDS]
