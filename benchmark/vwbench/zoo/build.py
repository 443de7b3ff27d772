"""Rebuild and check the mini zoo: ``vwbench zoo train`` and ``vwbench zoo check``.

Each mini checkpoint is trained into a temporary folder beside its final place and swapped in only
when training finished, so an interrupted rebuild never leaves a half-written checkpoint. The judge
is trained before mini-sd, whose quality report needs it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from vwbench.errors import UserError

ZOO_DIR = Path(__file__).parent
Log = Callable[[str], None]


@dataclass(frozen=True)
class ZooEntry:
    name: str
    train: Callable[[Path, Path, Log], dict]  # (out_dir, zoo_root, log) -> training log
    quality: Callable[[Path, Path], dict]  # (folder, zoo_root) -> quality numbers


def _clip_train(out: Path, root: Path, log: Log) -> dict:
    from vwbench.zoo.recipes.clip import train_mini_clip

    return train_mini_clip(out, log=log)


def _judge_train(out: Path, root: Path, log: Log) -> dict:
    from vwbench.zoo.recipes.clip import train_mini_judge

    return train_mini_judge(out, log=log)


def _owlv2_train(out: Path, root: Path, log: Log) -> dict:
    from vwbench.zoo.recipes.owlv2 import train_mini_owlv2

    return train_mini_owlv2(out, log=log)


def _sd_train(out: Path, root: Path, log: Log) -> dict:
    from vwbench.zoo.recipes.sd import train_mini_sd

    judge = root / "mini-judge"
    return train_mini_sd(out, seed=0, judge_folder=judge if judge.exists() else None, log=log)


def _clip_quality(folder: Path, root: Path) -> dict:
    from vwbench.zoo.recipes.clip import quality_report

    return quality_report(folder)


def _owlv2_quality(folder: Path, root: Path) -> dict:
    from vwbench.zoo.recipes.owlv2 import quality_report

    return quality_report(folder)


def _sd_quality(folder: Path, root: Path) -> dict:
    from vwbench.zoo.recipes.sd import quality_report

    return quality_report(folder, root / "mini-judge")


ENTRIES: dict[str, ZooEntry] = {
    e.name: e
    for e in (
        ZooEntry("mini-clip", _clip_train, _clip_quality),
        ZooEntry("mini-judge", _judge_train, _clip_quality),
        ZooEntry("mini-owlv2", _owlv2_train, _owlv2_quality),
        ZooEntry("mini-sd", _sd_train, _sd_quality),
    )
}


def _select(only: Sequence[str] | None) -> list[ZooEntry]:
    if not only:
        return list(ENTRIES.values())
    unknown = [n for n in only if n not in ENTRIES]
    if unknown:
        raise UserError(f"unknown zoo model(s) {unknown}; choose from {list(ENTRIES)}")
    return [ENTRIES[n] for n in ENTRIES if n in only]


def _swap_in(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def train_zoo(root: Path = ZOO_DIR, only: Sequence[str] | None = None, log: Log = print) -> dict[str, dict]:
    """Train the selected mini models (all by default) into ``root``; returns their training logs."""
    import torch

    logs = {}
    for entry in _select(only):
        tmp = root / f".{entry.name}.partial"
        shutil.rmtree(tmp, ignore_errors=True)
        start = time.perf_counter()
        torch.manual_seed(0)
        log(f"training {entry.name} ...")
        logs[entry.name] = entry.train(tmp, root, log)
        _swap_in(tmp, root / entry.name)
        log(f"{entry.name}: done in {time.perf_counter() - start:.0f} s")
    return logs


def verify_zoo(root: Path = ZOO_DIR, only: Sequence[str] | None = None) -> dict[str, Path]:
    """Hash-check every selected checkpoint against its manifest (a ``UserError`` names the first
    bad file); returns the folders."""
    from vwbench.registry.checkpoints import resolve_checkpoint
    from vwbench.registry.schema import CheckpointPin

    folders = {}
    for entry in _select(only):
        resolved = resolve_checkpoint(CheckpointPin(path=str(root / entry.name), manifest="manifest.json"))
        folders[entry.name] = resolved.path
    return folders


def check_zoo(root: Path = ZOO_DIR, only: Sequence[str] | None = None) -> dict[str, dict]:
    """Verify hashes, then measure each model's quality numbers."""
    folders = verify_zoo(root, only)
    return {name: ENTRIES[name].quality(folder, root) for name, folder in folders.items()}
