"""Rebuild and check the mini zoo: ``vwbench zoo train`` and ``vwbench zoo check``.

Each mini checkpoint is trained into a temporary folder beside its final place and swapped in only
when training finished, so an interrupted rebuild never leaves a half-written checkpoint. The judge
is trained before mini-sd, whose quality report needs it, and mini-sd-text (the CLIP whose frozen text
tower conditions mini-sd, as OpenCLIP's conditions SD 2.1) before mini-sd, which is built on it.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path

from vwbench.errors import UserError

ZOO_DIR = Path(__file__).parent
BUILD_DIR_ENV = "VWBENCH_ZOO_BUILD"
Log = Callable[[str], None]


def build_dir() -> Path:
    """Where models that are built but not shipped live (``$VWBENCH_ZOO_BUILD``, default
    ``~/.cache/vwbench/zoo-build``)."""
    return Path(os.environ.get(BUILD_DIR_ENV) or "~/.cache/vwbench/zoo-build").expanduser()


@dataclass(frozen=True)
class ZooEntry:
    name: str
    train: Callable[[Path, Path, Log], dict]  # (out_dir, zoo_root, log) -> training log
    quality: Callable[[Path, Path], dict]  # (folder, zoo_root) -> quality numbers
    after: tuple[str, ...] = ()  # entries whose finished checkpoints this one's training reads
    # False: an ingredient of another model, kept in build_dir(), not in the package (mini-sd-text's
    # text tower ships inside mini-sd, as OpenCLIP's inside SD 2.1; its own copy would take the zoo
    # past its 30 MB)
    shipped: bool = True


def entry_folder(root: Path, name: str) -> Path:
    """The folder of zoo entry ``name``: in ``root`` if it ships, else in :func:`build_dir`."""
    return Path(root) / name if ENTRIES[name].shipped else build_dir() / name


def _clip_train(out: Path, root: Path, log: Log) -> dict:
    from vwbench.zoo.recipes.clip import train_mini_clip

    return train_mini_clip(out, log=log)


def _judge_train(out: Path, root: Path, log: Log) -> dict:
    from vwbench.zoo.recipes.clip import train_mini_judge

    return train_mini_judge(out, log=log)


def _sd_text_train(out: Path, root: Path, log: Log) -> dict:
    from vwbench.zoo.recipes.clip import train_sd_text_tower

    return train_sd_text_tower(out, log=log)


def _owlv2_train(out: Path, root: Path, log: Log) -> dict:
    from vwbench.zoo.recipes.owlv2 import train_mini_owlv2

    return train_mini_owlv2(out, log=log)


def _hash_checked(folder: Path) -> Path:
    """``folder`` once its files match its manifest (a ``UserError`` names the first that does not)."""
    from vwbench.registry.checkpoints import resolve_checkpoint
    from vwbench.registry.schema import CheckpointPin

    return resolve_checkpoint(CheckpointPin(path=str(folder), manifest="manifest.json")).path


def _sd_train(out: Path, root: Path, log: Log) -> dict:
    from vwbench.zoo.recipes.sd import MiniSDConfig, train_mini_sd

    tower = entry_folder(root, "mini-sd-text")
    if not (tower / "manifest.json").is_file():
        raise UserError(
            f"mini-sd is built on mini-sd-text, which is not in {tower.parent}: run "
            f"`vwbench zoo train --only mini-sd-text` first (or set ${BUILD_DIR_ENV} to where it is)"
        )
    try:
        _hash_checked(tower)  # a damaged tower fails here, not after the UNet's 40 minutes
    except UserError as exc:  # it is built here, never shipped: rebuilding is the fix, not a re-fetch
        raise UserError(f"mini-sd's text tower is damaged: {exc}; rebuild it with `vwbench zoo train --only mini-sd-text`") from None
    judge = entry_folder(root, "mini-judge")
    config = MiniSDConfig(text_tower=str(tower))
    return train_mini_sd(out, seed=0, config=config, judge_folder=judge if judge.exists() else None, log=log)


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
        ZooEntry("mini-sd-text", _sd_text_train, _clip_quality, shipped=False),
        ZooEntry("mini-owlv2", _owlv2_train, _owlv2_quality),
        ZooEntry("mini-sd", _sd_train, _sd_quality, after=("mini-sd-text", "mini-judge")),
    )
}


def zoo_root(root: Path | str, *, must_exist: bool = True) -> Path:
    """``--root`` as an absolute path, relative to the current directory (not to the package,
    which relative checkpoint pins start from). ``must_exist``: a missing folder, or a file, is a
    one-line :class:`UserError`."""
    folder = Path(root).expanduser().absolute()
    if must_exist and not folder.is_dir():
        what = "is a file, not a folder" if folder.exists() else "does not exist"
        raise UserError(f"zoo folder {root} {what}: pass --root the folder `vwbench zoo train --root` wrote (or leave it out for the package's own zoo)")
    return folder


def built_entries(root: Path) -> list[str]:
    """The zoo entries with a checkpoint (a manifest or a training log) under ``root`` (unshipped
    ones: under :func:`build_dir`)."""
    return [
        name for name in ENTRIES
        if any((entry_folder(root, name) / f).is_file() for f in ("manifest.json", "training_log.json"))
    ]


def require_built(root: Path | str) -> Path:
    """``--root`` (see :func:`zoo_root`) when it holds at least one zoo checkpoint; a one-line
    :class:`UserError` otherwise (a wrong --root would give a card of models all "not built")."""
    folder = zoo_root(root)
    if not any(ENTRIES[name].shipped for name in built_entries(folder)):  # unshipped ones live in the build folder, whatever --root is
        raise UserError(
            f"no zoo checkpoints in {root} (no {', '.join(n for n in ENTRIES if ENTRIES[n].shipped)} folder with a "
            "manifest.json or training_log.json): pass --root the folder `vwbench zoo train --root` wrote"
        )
    return folder


def _select(only: Sequence[str] | None) -> list[ZooEntry]:
    if not only:
        return list(ENTRIES.values())
    unknown = [n for n in only if n not in ENTRIES]
    if unknown:
        named = [f"mini-{n}" for n in unknown if f"mini-{n}" in ENTRIES]  # `clip` as the tasks call it
        hint = f"; did you mean {', '.join(named)}?" if named else ""
        raise UserError(f"unknown zoo model(s) {unknown}{hint} (choose from {list(ENTRIES)})")
    return [ENTRIES[n] for n in ENTRIES if n in only]


def _swap_in(tmp: Path, final: Path) -> None:
    old = final.with_name(f".{final.name}.old")
    shutil.rmtree(old, ignore_errors=True)
    if final.exists():
        final.rename(old)
    tmp.rename(final)
    shutil.rmtree(old, ignore_errors=True)


def _train_entry(name: str, root: Path, log: Log) -> dict:
    """Train one entry into a temporary folder beside its place, then swap it in."""
    import torch

    entry = ENTRIES[name]
    final = entry_folder(root, name)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.with_name(f".{name}.partial")
    shutil.rmtree(tmp, ignore_errors=True)
    start = time.perf_counter()
    torch.manual_seed(0)
    log(f"training {name} into {final} ...")
    result = entry.train(tmp, root, log)
    _swap_in(tmp, final)
    log(f"{name}: done in {time.perf_counter() - start:.0f} s")
    return result


def _train_in_worker(name: str, root: str, threads: int) -> dict:
    """A worker process's job: one entry on ``threads`` torch threads, its log lines prefixed."""
    import torch

    torch.set_num_threads(threads)
    return _train_entry(name, Path(root), lambda message: print(f"[{name}] {message}", flush=True))


def run_in_order(names: Sequence[str], submit: Callable[[str], Future]) -> dict[str, dict]:
    """Run every entry of ``names`` through ``submit`` (which starts it and returns its future) as
    soon as the entries it comes ``after`` among ``names`` have finished; the others run side by
    side. The first failure cancels what has not started and is raised."""
    pending = list(names)
    running: dict[Future, str] = {}
    done: dict[str, dict] = {}
    while pending or running:
        for name in [n for n in pending if all(d in done or d not in names for d in ENTRIES[n].after)]:
            pending.remove(name)
            running[submit(name)] = name
        if not running:
            raise UserError(f"zoo entries {pending} wait on each other")
        finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for future in finished:
            name = running.pop(future)
            try:
                done[name] = future.result()
            except BaseException:
                for other in running:
                    other.cancel()
                raise
    return {n: done[n] for n in names}


def train_zoo(
    root: Path = ZOO_DIR, only: Sequence[str] | None = None, log: Log = print, jobs: int = 1
) -> dict[str, dict]:
    """Train the selected mini models (all by default) into ``root``; returns their training logs.
    ``jobs`` > 1 trains that many side by side, each in its own process on an equal share of the
    CPU's threads, each starting once the checkpoints it is built on are finished."""
    from vwbench.results.atomic import ensure_output_dir

    entries = _select(only)
    names = [entry.name for entry in entries]
    root = zoo_root(root, must_exist=False)
    # a --root that is a file or not writable is a one-line error now, not a traceback after training
    if any(e.shipped for e in entries):
        ensure_output_dir(root, "--root")
    if not all(e.shipped for e in entries):
        ensure_output_dir(build_dir(), f"${BUILD_DIR_ENV}")
    if jobs <= 1 or len(names) == 1:
        return {name: _train_entry(name, root, log) for name in names}
    threads = max(1, (os.cpu_count() or 1) // jobs)
    log(f"training {len(names)} models, {jobs} at a time on {threads} thread(s) each")
    context = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    pool = ProcessPoolExecutor(max_workers=jobs, mp_context=context)
    try:
        return run_in_order(names, lambda name: pool.submit(_train_in_worker, name, str(root), threads))
    except BaseException:
        # Ctrl-C from a terminal reaches the workers too, a SIGTERM or an error here does not:
        # without this, leaving the pool would wait for the models still training (up to 45 min)
        _stop_workers(pool)
        raise
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    """Terminate the pool's worker processes (Python < 3.14 has no public way: its private
    ``_processes`` table, read defensively)."""
    for process in list((getattr(pool, "_processes", None) or {}).values()):
        with contextlib.suppress(Exception):
            process.terminate()


def verify_zoo(root: Path = ZOO_DIR, only: Sequence[str] | None = None, problems: dict[str, str] | None = None) -> dict[str, Path]:
    """Hash-check every selected checkpoint against its manifest; returns the folders that pass.
    Each bad checkpoint's problem goes into ``problems`` (name -> one-line message) where it is
    given; otherwise a ``UserError`` names every bad one once all are checked. Unshipped entries
    are checked when they were built here (or named in ``only``)."""
    root = zoo_root(root)
    folders: dict[str, Path] = {}
    found: dict[str, str] = {}
    for entry in _select(only):
        folder = entry_folder(root, entry.name)
        try:
            if not entry.shipped and not (folder / "manifest.json").is_file():
                if not only:
                    continue
                raise UserError(f"{entry.name} is not shipped and was not built here (no {folder / 'manifest.json'}): build it with `vwbench zoo train --only {entry.name}`")
            if not folder.is_dir():  # the fix names --root: without it the rebuild would go to the package's zoo
                again = "" if root == zoo_root(ZOO_DIR) else f" --root {root}"
                raise UserError(f"checkpoint folder {folder} not found; rebuild it with: vwbench zoo train --only {entry.name}{again}")
            folders[entry.name] = _hash_checked(folder)
        except UserError as exc:
            found[entry.name] = str(exc)
    if problems is not None:
        problems.update(found)
    elif found:
        raise zoo_problems_error(found)
    return folders


def zoo_problems_error(problems: dict[str, str]) -> UserError:
    """One error for the checkpoints that failed their check: the message itself for one, each
    named with its message for several."""
    if len(problems) == 1:
        return UserError(next(iter(problems.values())))
    return UserError(f"{len(problems)} mini checkpoints failed their check: " + "; ".join(f"{name}: {message}" for name, message in problems.items()))


def check_zoo(root: Path = ZOO_DIR, only: Sequence[str] | None = None) -> dict[str, dict]:
    """Verify hashes, then measure each model's quality numbers."""
    root = zoo_root(root)
    folders = verify_zoo(root, only)
    return {name: ENTRIES[name].quality(folder, root) for name, folder in folders.items()}
