"""Run each measured thing in a fresh process, so that its peak memory is its own.

:func:`run_process` starts a command and reaps it with ``os.wait4``, whose resource usage is that
one child's (``ru_maxrss``: its peak resident set size), unlike ``RUSAGE_CHILDREN``, which is the
largest of all children reaped so far. :func:`run_job` runs one job of :mod:`vwbench.perf.jobs`
through ``python -m vwbench.perf.child`` and returns its result with the process's wall time and
peak memory (and, on a GPU, the job's peak CUDA memory as ``torch.cuda`` counts it).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vwbench.errors import UserError


class BenchError(RuntimeError):
    """A measurement process failed for a reason that is not the user's input."""


@dataclass
class ProcessRun:
    """One finished process: exit code, wall seconds, peak RSS (MiB) and its output's tails."""

    returncode: int
    wall_s: float
    peak_rss_mb: float
    stdout_tail: str = ""
    stderr_tail: str = ""


@dataclass
class Measurement:
    """A job's result and what its process cost."""

    job: str
    result: dict[str, Any]
    wall_s: float
    peak_rss_mb: float | None  # None when the job ran in this process (tests)
    cuda_peak_mb: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"job": self.job, "wall_s": self.wall_s, "peak_rss_mb": self.peak_rss_mb, "cuda_peak_mb": self.cuda_peak_mb, **self.result}


def _tail(handle, limit: int = 4000) -> str:
    handle.seek(0, os.SEEK_END)
    size = handle.tell()
    handle.seek(max(0, size - limit))
    return handle.read().decode(errors="replace")


def run_process(
    argv: Sequence[str], *, env: Mapping[str, str] | None = None, cwd: str | Path | None = None, timeout: float | None = None
) -> ProcessRun:
    """Run ``argv`` to completion and measure it (its stdout and stderr are kept, not shown)."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(list(argv), stdout=out, stderr=err, env=dict(env) if env is not None else None, cwd=cwd)
        timer = threading.Timer(timeout, proc.kill) if timeout else None
        if timer is not None:
            timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        except BaseException:
            proc.kill()
            os.wait4(proc.pid, 0)
            raise
        finally:
            if timer is not None:
                timer.cancel()
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, so Popen must not wait again
        # ru_maxrss is in KiB on Linux (bytes on macOS)
        rss_mb = usage.ru_maxrss / (1024 * 1024 if sys.platform == "darwin" else 1024)
        return ProcessRun(proc.returncode, wall, rss_mb, _tail(out), _tail(err))


def child_env(threads: int | None, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment for a measurement child, with ``threads`` CPU threads."""
    env = dict(os.environ)
    if threads:
        for name in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
            env[name] = str(threads)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    env.update(extra or {})
    return env


def run_job(
    job: str,
    args: dict[str, Any],
    *,
    threads: int | None = None,
    isolate: bool = True,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
) -> Measurement:
    """Run ``vwbench.perf.jobs.JOBS[job](**args)``: in a fresh process (``isolate``), or in this
    one (tests: no memory numbers then). A job's :class:`UserError` is raised here as one."""
    if not isolate:
        return _run_here(job, args, threads)
    with tempfile.TemporaryDirectory(prefix="vwbench-bench-") as tmp:
        spec, out = Path(tmp) / "job.json", Path(tmp) / "result.json"
        spec.write_text(json.dumps({"job": job, "args": args, "threads": threads}))
        run = run_process([sys.executable, "-m", "vwbench.perf.child", str(spec), str(out)], env=child_env(threads, env), timeout=timeout)
        payload = json.loads(out.read_text()) if out.is_file() else None
    if payload is None or "error" in payload:
        if payload is not None and payload.get("user_error"):
            raise UserError(payload["error"])
        reason = payload["error"] if payload else f"exit code {run.returncode}; stderr:\n{run.stderr_tail}"
        raise BenchError(f"bench job {job} failed: {reason}")
    return Measurement(job, payload["result"], run.wall_s, run.peak_rss_mb, payload.get("cuda_peak_mb"))


def _run_here(job: str, args: dict[str, Any], threads: int | None) -> Measurement:
    import torch

    from vwbench.perf.jobs import JOBS

    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    result = JOBS[job](**args)
    return Measurement(job, result, time.perf_counter() - start, None)


def run_child_main(argv: Sequence[str], jobs: Mapping[str, Callable[..., dict]]) -> int:
    """The body of ``python -m vwbench.perf.child JOB.json OUT.json``: run the job, write
    ``{"result": ...}`` or ``{"error": ...}`` to OUT.json. Returns the exit code."""
    from vwbench.results.atomic import atomic_write_json

    spec = json.loads(Path(argv[0]).read_text())
    out = Path(argv[1])
    import torch

    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    code = 0
    try:
        payload: dict[str, Any] = {"result": jobs[spec["job"]](**spec["args"])}
    except UserError as exc:
        payload, code = {"error": str(exc), "user_error": True}, 2
    except Exception:
        payload, code = {"error": traceback.format_exc(limit=20)}, 1
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        payload["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
    atomic_write_json(out, payload)
    return code
