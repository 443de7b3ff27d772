"""`vwbench analyze` checks that the checkpoints it loads are the ones the run recorded
(``provenance.checkpoints[*].sha256``): a run's words belong to the weights they were trained and
transferred on. Before, a "rebuilt" checkpoint at the same path (token-embedding rows shuffled,
manifest updated) was analysed without a word: `analyze neighbors` exited 0 with other neighbours
and overwrote its output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
import yaml


from tests.test_cli_pins import _main as _cli


def _copied_tasks(tiny_tasks: Path, tmp_path: Path, *roles: str) -> tuple[Path, dict[str, Path]]:
    """A copy of the tiny tasks folder whose ``roles`` (``clip``, ``owlv2``, ``judge``) point at
    copies of their checkpoints under ``tmp_path``."""
    tasks = tmp_path / "tasks"
    shutil.copytree(tiny_tasks, tasks)
    tier_file = tasks / "models" / "tiny.yaml"
    tier = yaml.safe_load(tier_file.read_text())
    copies = {}
    for role in roles:
        copies[role] = shutil.copytree(tiny_tasks.parent / role, tmp_path / "weights" / role)
        entry = tier["judge"] if role == "judge" else tier["models"][role]
        entry["checkpoint"]["path"] = str(copies[role])
    tier_file.write_text(yaml.safe_dump(tier))
    return tasks, copies


def _rebuild(folder: Path) -> Path:
    """The checkpoint "rebuilt": its token-embedding rows shuffled and its manifest written anew,
    so it still passes its own hash check. Returns the weights file."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from vwbench.zoo.manifest import write_manifest

    weights = next(folder.glob("*.safetensors"))
    with safe_open(str(weights), "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}
        metadata = f.metadata()
    key = next(k for k in tensors if k.endswith("token_embedding.weight"))
    tensors[key] = tensors[key][torch.randperm(tensors[key].shape[0], generator=torch.Generator().manual_seed(0))].contiguous()
    save_file(tensors, str(weights), metadata=metadata)
    write_manifest(folder)
    return weights


def _run(monkeypatch, capsys, tasks: Path, out: Path, pair: str) -> Path:
    code, _, err = _cli(monkeypatch, capsys, "run", "--task", pair, "--dataset", "synth-tiny", "--steps", "0", "--trials", "1",
                        "--tasks-dir", tasks, "--out", out, "--device", "cpu", "--threads", "1")
    assert code == 0, err
    return next((out / "results").rglob("*.json"))


def _neighbors(monkeypatch, capsys, tasks: Path, result: Path, out: Path) -> tuple[int, str, str]:
    return _cli(monkeypatch, capsys, "analyze", "neighbors", "--result", result, "--k", "2", "--tasks-dir", tasks, "--out", out, "--device", "cpu", "--threads", "1")


@pytest.mark.parametrize("role, family, why", [
    ("source", "clip", "the words were trained on other weights"),
    ("target", "owlv2", "the words were transferred to and evaluated on other weights"),
])
def test_neighbors_refuses_a_checkpoint_rebuilt_since_the_run(tiny_tasks, tmp_path, monkeypatch, capsys, role, family, why) -> None:
    tasks, copies = _copied_tasks(tiny_tasks, tmp_path, "clip", "owlv2")
    result = _run(monkeypatch, capsys, tasks, tmp_path / "runs", "clip->owlv2")
    code, out, err = _neighbors(monkeypatch, capsys, tasks, result, tmp_path / "nb")
    assert code == 0, err
    written = (tmp_path / "nb.json").read_bytes()

    weights = _rebuild(copies[family])
    code, out, err = _neighbors(monkeypatch, capsys, tasks, result, tmp_path / "nb")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {result}: checkpoint {copies[family]} ({role}, {family}) differs from the one this run used: "
                          f"file {weights.name} has sha256 "), err  # the weights are named, not the manifest that changed with them
    assert err.rstrip("\n").endswith(f"; {why}: restore that checkpoint or run the task again"), err
    assert "trial" not in out  # no neighbours printed
    assert (tmp_path / "nb.json").read_bytes() == written  # the earlier analysis is kept


def test_a_rerun_of_the_task_on_the_rebuilt_checkpoint_is_analysed(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    """What the refusal says to do works: run the task again, then analyse its new result."""
    tasks, copies = _copied_tasks(tiny_tasks, tmp_path, "clip")
    old = _run(monkeypatch, capsys, tasks, tmp_path / "runs", "clip->owlv2")
    _rebuild(copies["clip"])
    new = _run(monkeypatch, capsys, tasks, tmp_path / "runs2", "clip->owlv2")
    assert json.loads(new.read_text())["provenance"]["checkpoints"] != json.loads(old.read_text())["provenance"]["checkpoints"]
    code, _, err = _neighbors(monkeypatch, capsys, tasks, new, tmp_path / "nb")
    assert code == 0, err


def test_a_result_without_checkpoint_hashes_is_analysed_without_the_check(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    """Results that record no sha256 for a checkpoint (older ones) have nothing to compare with:
    they are analysed as before."""
    tasks, copies = _copied_tasks(tiny_tasks, tmp_path, "clip")
    result = _run(monkeypatch, capsys, tasks, tmp_path / "runs", "clip->owlv2")
    data = json.loads(result.read_text())
    for entry in data["provenance"]["checkpoints"]:
        entry["sha256"] = {}
    result.write_text(json.dumps(data))
    _rebuild(copies["clip"])
    code, _, err = _neighbors(monkeypatch, capsys, tasks, result, tmp_path / "nb")
    assert code == 0, err


def test_the_judge_is_checked_only_by_the_analysis_that_loads_it(tiny_tasks, tmp_path, monkeypatch, capsys) -> None:
    tasks, copies = _copied_tasks(tiny_tasks, tmp_path, "judge")
    result = _run(monkeypatch, capsys, tasks, tmp_path / "runs", "sd->sd")
    _rebuild(copies["judge"])
    code, _, err = _neighbors(monkeypatch, capsys, tasks, result, tmp_path / "nb")  # the words and both ends are unchanged
    assert code == 0, err
    code, out, err = _cli(monkeypatch, capsys, "analyze", "truncation", "--result", result, "--layers", "1", "--generations", "1", "--inference-steps", "1",
                          "--tasks-dir", tasks, "--out", tmp_path / "tr", "--device", "cpu", "--threads", "1")
    assert code == 2 and err.count("\n") == 1, err
    assert err.startswith(f"error: {result}: checkpoint {copies['judge']} (judge, clip) differs from the one this run used: "), err
    assert "the run's images were judged by other weights: restore that checkpoint or run the task again" in err
    assert not (tmp_path / "tr.json").exists()


def test_a_mismatch_names_a_weights_file_first_then_missing_and_new_files() -> None:
    from vwbench.analysis.context import checkpoint_mismatch

    same = {"model.safetensors": "a" * 64, "config.json": "b" * 64, "manifest.json": "c" * 64}
    assert checkpoint_mismatch(same, dict(same)) is None
    rebuilt = {**same, "model.safetensors": "d" * 64, "manifest.json": "e" * 64}
    assert checkpoint_mismatch(same, rebuilt) == f"file model.safetensors has sha256 {'d' * 12}..., the run used {'a' * 12}..."
    assert checkpoint_mismatch(same, {**same, "config.json": "f" * 64, "manifest.json": "e" * 64}).startswith("file config.json has sha256")
    assert checkpoint_mismatch(same, {k: v for k, v in same.items() if k != "config.json"}) == "file config.json, which the run used, is not there now"
    assert checkpoint_mismatch(same, {**same, "extra.bin": "0" * 64}) == "file extra.bin is new (the run had no such file)"
