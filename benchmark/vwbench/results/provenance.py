"""Where a number came from: versions, git commit, device, machine, time."""

from __future__ import annotations

import importlib.metadata
import platform
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path

import vwbench

_PACKAGES = ("torch", "diffusers", "transformers", "open_clip_torch", "torchmetrics", "numpy")


def library_versions(packages: Sequence[str] = _PACKAGES, missing: str | None = None) -> dict[str, str]:
    """Versions of Python and ``packages``; a package that is not installed is left out, or shown
    as ``missing`` when that is given."""
    versions = {"python": platform.python_version()}
    for name in packages:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            if missing is not None:
                versions[name] = missing
    return versions


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo`` on Linux, else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def compute_environment(device: str = "cpu") -> dict[str, str | int]:
    """What besides the software shapes a result's arithmetic: the CPU model and torch's thread
    count (SD-trained words differ between CPU models and between thread counts), and the GPU's
    name where one ran."""
    import torch

    machine: dict[str, str | int] = {"cpu": cpu_model(), "torch_threads": torch.get_num_threads()}
    if str(device).startswith("cuda") and torch.cuda.is_available():
        machine["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return machine


def git_commit() -> str | None:
    """The commit of the vwbench checkout, when vwbench runs from one (``None`` otherwise), with
    ``-dirty`` when tracked files differ from it and ``-unchecked`` when ``git status`` failed."""
    repo = Path(vwbench.__file__).resolve().parents[2]
    if not (repo / ".git").exists():
        return None
    try:
        out = subprocess.run(["git", "-C", str(repo), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    try:
        dirty = subprocess.run(["git", "-C", str(repo), "status", "--porcelain", "--untracked-files=no"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return out.stdout.strip() + "-unchecked"  # a slow checkout: the commit, with no claim that it is clean
    if dirty.returncode != 0:
        return out.stdout.strip() + "-unchecked"
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def _short(commit: str) -> str:
    sha, _, suffix = commit.partition("-")  # the suffix (-dirty, -unchecked) says what is known of the tree
    return sha[:12] + (f"-{suffix}" if suffix else "")


def made_elsewhere(stored_commit: str | None) -> str:
    """What a "reusing the stored result" (or "... trained words") line adds when the stored thing
    was made by other code than this checkout's: its commit (cache keys hold vwbench's release,
    not the commit, so a development checkout reuses work across commits); "" when both are the
    same clean commit or either is unknown. Two modified trees of one commit may hold different
    code, so they are named too."""
    here = git_commit()
    if not stored_commit or not here or (stored_commit == here and "-" not in here):  # a clean checkout (SHA-1 or SHA-256 ids)
        return ""
    made = (f"made from a modified tree of commit {_short(stored_commit)}, as this checkout is" if stored_commit == here
            else f"made at commit {_short(stored_commit)}, this checkout is {_short(here)}")
    return f" ({made}: give another --out to compute it, and the words it reads, with this code)"


def utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# the order a run's stages happen in (a stored result's JSON keeps its keys sorted by name)
RUN_STAGE_ORDER = ("resolve", "data", "load_source", "load", "plan", "load_target", "train", "transfer", "evaluate", "metrics")


def in_run_order(wall_time_s: dict[str, float]) -> dict[str, float]:
    """``wall_time_s`` with the stages of :data:`RUN_STAGE_ORDER` in that order, then any others
    (a study family's own stages, which come after them) as they are."""
    known = [k for k in RUN_STAGE_ORDER if k in wall_time_s]
    return {k: wall_time_s[k] for k in [*known, *(k for k in wall_time_s if k not in RUN_STAGE_ORDER)]}


@dataclass
class StageTimer:
    """Wall time per named stage (``with timer("train"): ...``), summed over repeats."""

    stages: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        try:
            yield
        finally:
            self.stages[name] = round(self.stages.get(name, 0.0) + time.perf_counter() - start, 3)
