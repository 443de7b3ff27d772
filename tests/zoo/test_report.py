"""`vwbench zoo report` writes the zoo card from the checkpoints' own training logs."""

from __future__ import annotations

import json
import shutil

import pytest

from vwbench.leaderboard.build import SCHEMA
from vwbench.zoo.report import _curves, write_zoo_report


def test_curves_are_found_at_any_depth():
    log = {"loss_curve": [[0, 2.0], [9, 1.0]], "detect": {"loss": {"total": [[0, 5.0], [5, 3.0]]}}, "quality": {"a": 0.5}, "x": [1, 2]}
    assert set(_curves(log)) == {"loss_curve", "detect.loss.total"}


def test_report_lists_built_and_missing_models(tmp_path):
    root = tmp_path / "zoo"
    clip = root / "mini-clip"
    clip.mkdir(parents=True)
    (clip / "training_log.json").write_text(json.dumps({
        "model": {"parameters": 1_500_000},
        "loss_curve": [[0, 4.0], [99, 1.5]],
        "quality": {"synth-voc": 0.93, "synth-coco": 0.91},
        "wall_s": {"total": 600.0},
        "environment": {"threads": 1},
    }))
    out = write_zoo_report(tmp_path / "board", root, names=["mini-clip", "mini-owlv2"])
    text = out.read_text()
    assert "| mini-clip | 1.50M |" in text and "10.0 min" in text
    assert "| synth-voc | 0.930 |" in text
    assert "| mini-clip | zero-shot accuracy | synth-voc | >= 0.90 | 0.930 | yes |" in text
    assert "| mini-clip | zero-shot accuracy | synth-imagenet | >= 0.90 | not measured |  |" in text
    assert "| mini-owlv2 | mAP@.5, class names as queries | synth-coco | >= 0.70 | not measured |  |" in text
    assert "Not built: `vwbench zoo train --only mini-owlv2`" in text
    assert (tmp_path / "board" / "zoo" / "mini-clip-curves.png").stat().st_size > 1000
    assert (tmp_path / "board" / "zoo" / "world.png").stat().st_size > 1000


def test_measured_numbers_replace_the_logs_and_are_stored(tmp_path):
    root = tmp_path / "zoo"
    (root / "mini-clip").mkdir(parents=True)
    (root / "mini-clip" / "training_log.json").write_text(json.dumps({"model": {"parameters": 1_000_000}, "quality": {"synth-voc": 0.5}}))
    measured = {"mini-clip": {"synth-voc": 0.95}}
    out = write_zoo_report(tmp_path / "board", root, names=["mini-clip"], measured=measured)
    text = out.read_text()
    assert "| mini-clip | zero-shot accuracy | synth-voc | >= 0.90 | 0.950 | yes |" in text and "0.500" not in text
    assert "measured by `vwbench zoo check`" in text
    assert json.loads((tmp_path / "board" / "zoo" / "quality.json").read_text()) == measured


def test_the_detector_table_shows_the_region_recall_where_it_was_measured(tmp_path):
    root = tmp_path / "zoo"
    (root / "mini-owlv2").mkdir(parents=True)
    (root / "mini-owlv2" / "training_log.json").write_text(json.dumps({"parameters": 2_000_000}))
    measured = {"mini-owlv2": {"datasets": {
        "synth-coco": {"map": 0.33, "map50": 0.55, "region_recall50": 0.8},
        "synth-voc": {"map": 0.5, "map50": 0.75},  # recorded before the recall was
    }}}
    text = write_zoo_report(tmp_path / "board", root, names=["mini-owlv2"], measured=measured).read_text()
    assert "| synth-coco | 0.330 | 0.550 | 0.800 |" in text
    assert "| synth-voc | 0.500 | 0.750 | not measured |" in text
    assert "the ceiling of its mAP@.5" in text


def test_an_unshipped_model_not_built_here_keeps_the_numbers_its_user_recorded(tmp_path, monkeypatch):
    """mini-sd-text is built into the build folder, not shipped: where it is not built, the card
    shows what mini-sd's training log recorded for the tower it was trained on."""
    root = tmp_path / "zoo"
    monkeypatch.setenv("VWBENCH_ZOO_BUILD", str(tmp_path / "empty-build"))
    (root / "mini-sd").mkdir(parents=True)
    (root / "mini-sd" / "training_log.json").write_text(json.dumps({
        "text_tower": {"folder": "mini-sd-text", "weights_sha256": "cb05c213e5e3" + "0" * 52,
                       "zero_shot_accuracy": {"synth-voc": 0.884}, "wall_s": {"total": 1676.4}},
        "quality": {"datasets": {"synth-voc": {"accuracy": 0.375}}},
    }))
    text = write_zoo_report(tmp_path / "board", root, names=["mini-sd-text"]).read_text()
    section = text.split("## mini-sd-text", 1)[1].split("## mini-sd\n", 1)[0]
    assert "Not built: `vwbench zoo train --only mini-sd-text`" in section
    assert "mini-sd's training log recorded" in section and "`cb05c213e5e3...`" in section
    assert "| synth-voc | 0.884 |" in section
    assert "| mini-sd-text | ? | not built here (not shipped) | 27.9 min | ? |" in text


def test_a_card_rewritten_where_an_unshipped_model_is_not_built_keeps_its_built_section(tmp_path, monkeypatch):
    """The committed card was written where mini-sd-text was built; rewriting it elsewhere keeps
    that model's row, section and quality numbers instead of replacing them by "not built"."""
    monkeypatch.setenv("VWBENCH_ZOO_BUILD", str(tmp_path / "build"))
    root = tmp_path / "zoo"
    (root / "mini-sd").mkdir(parents=True)
    (root / "mini-sd" / "training_log.json").write_text(json.dumps({"parameters": 4_000_000}))
    built = tmp_path / "build" / "mini-sd-text"
    built.mkdir(parents=True)
    (built / "training_log.json").write_text(json.dumps({"parameters": 3_430_000, "quality": {"synth-voc": 0.884}}))
    out = tmp_path / "board"
    measured = {"mini-sd": {"datasets": {}}, "mini-sd-text": {"synth-voc": 0.884}}
    first = write_zoo_report(out, root, names=["mini-sd-text", "mini-sd"], measured=measured).read_text()
    assert "| mini-sd-text | 3.43M |" in first
    shutil.rmtree(built)  # another machine: mini-sd-text is not built there
    second = write_zoo_report(out, root, names=["mini-sd-text", "mini-sd"], measured={"mini-sd": {"datasets": {}}}).read_text()
    section = lambda text: text.split("## mini-sd-text", 1)[1].split("## mini-sd\n", 1)[0]  # noqa: E731
    assert "| mini-sd-text | 3.43M |" in second and section(second) == section(first) and "Not built" not in section(second)
    assert json.loads((out / "zoo" / "quality.json").read_text())["mini-sd-text"] == {"synth-voc": 0.884}


def _board(in_domain: dict[str, float], moved: dict[tuple[str, str], float]) -> dict:
    """A leaderboard.json of one dataset: lstsq grid cells and their results."""
    metrics = {"sd": "generation_accuracy", "owlv2": "map", "clip": "classification_accuracy"}
    results, cells = {}, {}
    for source in metrics:
        for target in metrics:
            value = in_domain[target] if source == target else moved.get((source, target))
            if value is None:
                continue
            rid = f"r{len(results)}"
            results[rid] = {"metric": metrics[target], "value": value, "ci95": [value - 0.05, value + 0.05],
                            **({"secondary_metrics": {"map50": value + 0.2}} if target == "owlv2" else {})}
            cells.setdefault(source, {})[target] = {"in_domain": source == target, "result": rid, "value": value}
    grids = [{"method": "anchor", "cells": {}}, {"method": "lstsq", "cells": cells}]
    return {"schema": SCHEMA, "datasets": {"synth-coco": {"grids": grids}}, "results": results}


def _one_checkpoint(root):
    """A zoo folder holding one built model (a report needs at least one)."""
    (root / "mini-clip").mkdir(parents=True)
    (root / "mini-clip" / "training_log.json").write_text(json.dumps({"parameters": 1000}))
    return root


def test_the_card_sets_in_domain_words_against_the_targets(tmp_path):
    _one_checkpoint(tmp_path / "zoo")
    board = _board({"sd": 0.85, "owlv2": 0.305, "clip": 0.9}, {("clip", "sd"): 0.6, ("owlv2", "sd"): 0.4, ("sd", "clip"): 0.45})
    (tmp_path / "board").mkdir()
    (tmp_path / "board" / "leaderboard.json").write_text(json.dumps(board))
    text = write_zoo_report(tmp_path / "board", tmp_path / "zoo", names=[]).read_text()
    assert "| sd->sd | generation accuracy | synth-coco | >= 0.80 | 0.850 [0.800, 0.900] | yes |" in text
    assert "| owlv2->owlv2 | detection mAP | synth-coco | >= 0.50 | 0.305 [0.255, 0.355] (mAP@.5 0.505) | **no** |" in text
    assert "| synth-coco | sd | 0.850 | 0.500 (2) | 59% | - | - |" in text  # (0.6 + 0.4) / 2 of 0.85; no random map on the board
    assert "| synth-coco | clip | 0.900 | 0.450 (1) | 50% | - | - |" in text
    assert "| synth-coco | owlv2 |" not in text.split("share of in-domain", 1)[1]  # nothing moved into owlv2


def test_the_share_above_the_floor_measures_against_the_random_map_from_the_same_sources(tmp_path):
    """Classification's floor is far above 0: 0.84 of an in-domain 1.0 is 84% of it, but only 60% of
    the way up from a random map's 0.6."""
    _one_checkpoint(tmp_path / "zoo")
    board = _board({"sd": 0.85, "owlv2": 0.305, "clip": 1.0}, {("sd", "clip"): 0.84, ("owlv2", "clip"): 0.84, ("clip", "sd"): 0.5})
    grids = board["datasets"]["synth-coco"]["grids"]
    grids.append({"method": "random", "cells": {"sd": {"clip": {"value": 0.62}}, "owlv2": {"clip": {"value": 0.58}}}})
    (tmp_path / "board").mkdir()
    (tmp_path / "board" / "leaderboard.json").write_text(json.dumps(board))
    text = write_zoo_report(tmp_path / "board", tmp_path / "zoo", names=[]).read_text()
    assert "| synth-coco | clip | 1.000 | 0.840 (2) | 84% | 0.600 | 60% |" in text
    assert "| synth-coco | sd | 0.850 | 0.500 (1) | 59% | - | - |" in text  # no random map from clip into sd: no floor


def test_the_card_without_a_leaderboard_has_no_word_section_and_a_broken_one_is_named(tmp_path):
    from vwbench.errors import UserError

    _one_checkpoint(tmp_path / "zoo")
    text = write_zoo_report(tmp_path / "board", tmp_path / "zoo", names=[]).read_text()
    assert "In-domain words" not in text
    (tmp_path / "board" / "leaderboard.json").write_text("{not json")
    with pytest.raises(UserError, match="vwbench leaderboard"):
        write_zoo_report(tmp_path / "board", tmp_path / "zoo", names=[])


def test_zoo_report_names_a_missing_board_in_one_line(tmp_path, monkeypatch, capsys):
    from vwbench.cli import main

    monkeypatch.setattr("sys.argv", ["vwbench", "zoo", "report", "--out", str(tmp_path / "card"), "--board", str(tmp_path / "none.json")])
    with pytest.raises(SystemExit) as exit_info:
        main()
    err = capsys.readouterr().err
    assert exit_info.value.code == 2
    assert err.startswith("error: no leaderboard at") and err.count("\n") == 1
    assert not (tmp_path / "card" / "zoo.md").exists()


def test_a_damaged_training_log_is_one_line_and_writes_nothing(tmp_path):
    from vwbench.errors import UserError

    root = tmp_path / "zoo"
    (root / "mini-clip").mkdir(parents=True)
    (root / "mini-clip" / "training_log.json").write_text('{"parameters": 1000, "curve": [1, 2')  # cut off mid-write
    with pytest.raises(UserError, match=r"mini-clip/training_log.json: not a readable training log .*zoo train --only mini-clip"):
        write_zoo_report(tmp_path / "board", root, names=["mini-clip"])
    assert not (tmp_path / "board").exists()  # no world.png, no curves, no half a card


def test_a_full_disk_while_drawing_the_card_is_one_line_and_leaves_no_temp_file(tmp_path, disk_full_at):
    from vwbench.errors import UserError
    from vwbench.zoo.report import _plot_curves

    disk_full_at(1)
    with pytest.raises(UserError, match="No space left"):
        _plot_curves("mini-x", {"loss": [[0, 2.0], [9, 1.0]]}, tmp_path / "curves.png")
    assert list(tmp_path.iterdir()) == []
