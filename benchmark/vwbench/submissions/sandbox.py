"""Run a transfer-method submission's code in a separate, limited process.

The child (:mod:`vwbench.submissions.child`, run as a script) gets:

* a fresh temporary working directory holding a copy of the submission and the input arrays,
  which is deleted afterwards; its ``HOME`` and ``TMPDIR`` point there;
* a scrubbed environment (no inherited variables: no tokens, proxies or ``PYTHONPATH``);
* kernel limits (``setrlimit``): address space (``memory_mb``), CPU seconds, the size of any file
  it writes (which also bounds what it prints), no core dumps; and a wall-clock ``time_limit_s``
  after which its whole process group is killed;
* no network: it runs in a new user and network namespace (``unshare -rn``) where the kernel
  permits one, so it sees only an unconfigured loopback; its audit hook also refuses sockets,
  subprocesses and files outside its working directory and the Python installation.

Whatever the child does (crash, hang, exhaust memory, print megabytes, return garbage), the
caller gets either validated output or a :class:`SubmissionFailure` whose message says what
happened. Nothing the child writes is read except through the safetensors checks.
"""

from __future__ import annotations

import functools
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vwbench.errors import UserError
from vwbench.jsonio import read_json

CHILD = Path(__file__).with_name("child.py")
EXIT_SUBMISSION_ERROR = 3
TAIL_BYTES = 2000


class SubmissionFailure(UserError):
    """A submission crashed, hung, ran out of a limit or returned unusable output."""


@dataclass(frozen=True)
class Limits:
    time_limit_s: float = 300.0
    memory_mb: int = 4096  # address space; importing torch alone maps about 650 MB
    output_mb: int = 256  # largest file the child may write (stdout and stderr included)
    threads: int = 1


@functools.lru_cache(maxsize=1)
def network_namespace_available() -> bool:
    """Whether ``unshare -rn`` works here (it does not in containers that forbid user namespaces)."""
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        return subprocess.run([exe, "-rn", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def _die_with(parent: int) -> None:
    """In the child before it execs: the kernel kills it (SIGKILL) when the vwbench process that
    started it dies, even by ``kill -9``, which leaves no chance to clean up (Linux only; the
    setting survives the exec of ``unshare`` and of Python). A parent already gone: exit now."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):  # no prctl on this platform: the parent's cleanup still runs
        return
    if os.getppid() != parent:
        os._exit(1)


def _limit(limits: Limits):
    parent = os.getpid()

    def apply() -> None:
        _die_with(parent)
        mem = limits.memory_mb * 2**20
        resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
        cpu = int(limits.time_limit_s) + 5
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
        size = limits.output_mb * 2**20
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    return apply


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as f:
            f.seek(0, os.SEEK_END)
            size = f.tell()
            f.seek(max(0, size - TAIL_BYTES))
            text = f.read().decode("utf-8", "replace").strip()
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return lines[-1][:300] if lines else ""


def _clean_env(work: Path, threads: int) -> dict[str, str]:
    n = str(threads)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work), "TMPDIR": str(work / "tmp"), "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
    }


WORK_PREFIX = "vwbench-sub-"


def remove_orphaned_work_folders(root: Path | None = None) -> int:
    """Delete the sandbox work folders (``vwbench-sub-<pid>-*`` in the temp folder) whose vwbench
    process is gone: one killed by ``kill -9`` could not remove its own (its sandboxed child dies
    with it). A folder whose process still runs, or that is not ours to delete, is left. Returns
    how many were removed."""
    root = Path(root or tempfile.gettempdir())
    removed = 0
    try:
        candidates = list(root.glob(f"{WORK_PREFIX}*-*"))
    except OSError:
        return 0
    for folder in candidates:
        pid = folder.name[len(WORK_PREFIX):].split("-", 1)[0]
        if not pid.isdigit() or not folder.is_dir() or folder.is_symlink():
            continue
        try:
            if folder.stat().st_uid != os.getuid():
                continue
            os.kill(int(pid), 0)
            continue  # its process (or one that reuses the pid) is alive: leave it
        except ProcessLookupError:
            pass
        except (PermissionError, OSError, OverflowError):
            continue  # a live process of another user, or a pid that cannot be one
        shutil.rmtree(folder, ignore_errors=True)
        removed += not folder.exists()
    return removed


def run_transfer_submission(
    folder: Path,
    entry: str,
    class_name: str,
    source: np.ndarray,
    target: np.ndarray,
    tokens: list[str],
    vectors: np.ndarray,
    init_words: list[str],
    limits: Limits = Limits(),
    label: str = "submission",
) -> tuple[np.ndarray, dict, dict]:
    """Fit the submission on ``(source, target)`` rows and map ``vectors [m, ds]`` in a child process.

    Returns ``(mapped [m, dt] float32, the method's describe() dict, sandbox facts)``; raises
    :class:`SubmissionFailure` for anything else.
    """
    from safetensors.numpy import save_file

    from vwbench.submissions.safe_tensors import TensorFileError, read_tensors

    remove_orphaned_work_folders()
    with tempfile.TemporaryDirectory(prefix=f"{WORK_PREFIX}{os.getpid()}-") as tmp:
        work = Path(tmp)
        for sub in ("in", "out", "run", "tmp", "logs"):
            (work / sub).mkdir()
        shutil.copytree(folder, work / "submission", symlinks=False, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        request = {"entry": str(work / "submission" / entry), "class": class_name, "tokens": tokens, "init_words": init_words}
        (work / "in" / "request.json").write_text(json.dumps(request))
        save_file(
            {"source": np.ascontiguousarray(source, np.float32), "target": np.ascontiguousarray(target, np.float32), "vectors": np.ascontiguousarray(vectors, np.float32)},
            str(work / "in" / "arrays.safetensors"),
        )
        isolated = network_namespace_available()
        command = [sys.executable, "-I", "-B", str(CHILD), str(work)]
        if isolated:
            command = [shutil.which("unshare") or "unshare", "-rn", *command]
        start = time.monotonic()
        with (work / "logs" / "stdout").open("wb") as out, (work / "logs" / "stderr").open("wb") as err:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=work / "run", env=_clean_env(work, limits.threads),
                preexec_fn=_limit(limits), start_new_session=True, close_fds=True,
            )
            try:
                code = proc.wait(timeout=limits.time_limit_s)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                raise SubmissionFailure(f"{label}: ran longer than the {limits.time_limit_s:g} s time limit and was stopped") from None
            finally:
                if proc.poll() is None:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                else:
                    try:  # anything it left running in its process group goes too
                        os.killpg(proc.pid, signal.SIGKILL)
                    except (ProcessLookupError, PermissionError):
                        pass
        wall = round(time.monotonic() - start, 3)
        if code != 0:
            raise SubmissionFailure(f"{label}: {_explain(code, work, limits)}")
        if not (work / "out" / "mapped.safetensors").is_file():
            raise SubmissionFailure(f"{label}: its process ended without an error but before its map() output was written "
                                    "(does fit() or map() call sys.exit or os._exit?)")
        try:
            mapped = read_tensors(work / "out" / "mapped.safetensors", max_file_bytes=limits.output_mb * 2**20).tensors.get("mapped")
        except TensorFileError as exc:
            raise SubmissionFailure(f"{label}: its output is unusable: {exc}") from None
        if mapped is None or mapped.ndim != 2 or mapped.shape[0] != vectors.shape[0]:
            shape = None if mapped is None else tuple(mapped.shape)
            raise SubmissionFailure(f"{label}: map() returned shape {shape}, expected ({vectors.shape[0]}, d_target)")
        describe = _read_describe(work / "out" / "describe.json")
        facts = {"network_isolation": "unshare -rn" if isolated else "audit hook only", "wall_time_s": wall, **limits.__dict__}
        return mapped.numpy(), describe, facts


def _read_describe(path: Path) -> dict:
    try:
        if path.stat().st_size > 64_000:
            return {"describe": "omitted: over 64 kB"}
        payload = read_json(path)
    except (OSError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _explain(code: int, work: Path, limits: Limits) -> str:
    why = _why(code, work, limits)
    if "File too large" in why or "Errno 27" in why:  # Python ignores SIGXFSZ: writes fail with EFBIG
        return f"wrote more than the {limits.output_mb} MB output limit (printing counts) ({why[:200]})"
    return why


def _why(code: int, work: Path, limits: Limits) -> str:
    error = work / "out" / "error.json"
    if code == EXIT_SUBMISSION_ERROR and error.exists() and error.stat().st_size < 64_000:
        # the submission can write this file itself: anything but the child's own object is ignored
        try:
            payload = read_json(error)
        except (OSError, ValueError):
            payload = None
        if isinstance(payload, dict):
            message = str(payload.get("error"))[:500]
            hint = f" (the memory limit is {limits.memory_mb} MB)" if "MemoryError" in message or "Unable to allocate" in message else ""
            return f"raised in {str(payload.get('stage'))[:20]}(): {message}{hint}"
    if code < 0:
        sig = -code
        why = {
            signal.SIGXFSZ: f"wrote more than the {limits.output_mb} MB output limit",
            signal.SIGXCPU: "used more CPU time than its time limit",
            signal.SIGKILL: "was killed (most often: out of memory)",
            signal.SIGSEGV: "crashed (segmentation fault)",
        }.get(sig, f"was killed by signal {sig}")
        return why
    tail = _tail(work / "logs" / "stderr")
    if "MemoryError" in tail or "Unable to allocate" in tail or "std::bad_alloc" in tail:
        return f"ran out of its {limits.memory_mb} MB memory limit ({tail})"
    return f"exited with code {code}" + (f": {tail}" if tail else "")
