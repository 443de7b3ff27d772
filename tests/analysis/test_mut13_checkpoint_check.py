"""Mutation-testing round 13 pins of `vwbench analyze`'s checkpoint check: a weights file is named
before a config that changed with it, and the target is checked even by an analysis that never
loads it (the words were transferred on the old weights)."""

from __future__ import annotations

from .test_analysis_checkpoint_checked import _cli, _copied_tasks, _rebuild, _run


def test_a_changed_weights_file_is_named_before_a_changed_config_that_sorts_first() -> None:
    from vwbench.analysis.context import checkpoint_mismatch

    old = {"config.json": "a" * 64, "model.safetensors": "b" * 64}
    assert checkpoint_mismatch(old, {"config.json": "c" * 64, "model.safetensors": "d" * 64}).startswith("file model.safetensors has sha256 dddddddddddd")


def test_truncation_refuses_a_run_whose_target_was_rebuilt(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    tasks, copies = _copied_tasks(tiny_tasks, tmp_path, "owlv2")
    result = _run(monkeypatch, capsys, tasks, tmp_path / "runs", "sd->owlv2")
    _rebuild(copies["owlv2"])
    code, out, err = _cli(monkeypatch, capsys, "analyze", "truncation", "--result", result, "--layers", "1", "--generations", "1", "--inference-steps", "1",
                          "--tasks-dir", tasks, "--out", tmp_path / "tr", "--device", "cpu", "--threads", "1")
    assert code == 2 and err.startswith(f"error: {result}: checkpoint {copies['owlv2']} (target, owlv2) differs from the one this run used: "), err
    assert not (tmp_path / "tr.json").exists()
