"""Run a transfer-method submission's code in a separate, limited process.

The child (:mod:`vwbench.submissions.child`, run as a script) gets:

* a fresh temporary working directory holding a copy of the submission (read once, without
  following symbolic links; hidden files and ``__pycache__`` left out) and the input arrays,
  which is deleted afterwards; its ``HOME`` and ``TMPDIR`` point into it;
* a scrubbed environment (no inherited variables: no tokens, proxies or ``PYTHONPATH``);
* kernel limits (``setrlimit``) on every process it starts: address space (``memory_mb``), CPU
  seconds, the size of any one file it writes, no core dumps; and a wall-clock ``time_limit_s``
  after which it is killed;
* **OS isolation where the kernel permits unprivileged user namespaces** (checked once per
  process, :func:`isolation_available`): the child runs in new user, network, mount and pid
  namespaces and its own IPC namespace (``unshare -rnmipf``: no SysV shared memory or message
  queue of the host's, none that outlives it). Before Python starts, a setup script
  (:data:`_SETUP`) replaces ``/dev`` by a tmpfs with only ``null``, ``zero``, ``full``,
  ``random`` and ``urandom`` (a read-only mount does not stop writes to a device node: a loop
  device, ``/dev/kmsg``), hides the temp folder (all but the work folder and, read-only, a
  Python or vwbench checkout inside it), ``/run`` and ``/var/tmp`` under empty tmpfs mounts (Unix sockets there, such as an ssh agent's, X11's or
  Docker's, are out of reach: a network namespace does not cover sockets on the filesystem; a
  temp folder inside one of them leaves the rest of that one visible), remounts every mount
  point read-only, ``nodev`` and ``nosuid`` (one that cannot be remounted, or whose path
  ``/proc/self/mounts`` escapes, fails the setup, and so the probe: closed), mounts a
  tmpfs of ``output_mb`` on the work folder's writable part (``run/``, ``tmp/``, ``out/``) and
  drops every capability, so the child can write only that tmpfs (and its stdout and stderr,
  each up to ``output_mb``). It can connect only over loopback (``/sys`` still lists the host's
  interfaces) and sees only its own processes: it cannot signal the vwbench process or any
  other, and everything it starts dies with it. Its processes and threads together are capped
  at ``processes`` (:func:`process_cap`): vwbench counts them in the namespace every
  :data:`WATCH_INTERVAL_S` and stops a run that reaches the cap, and the kernel refuses the forks
  beyond it where it can: the pid namespace's own ``pid_max`` (Linux 6.14+, any user; set to
  ``processes + 300``, as pids below 300 are not reused once the counter wraps), and
  ``RLIMIT_NPROC`` set inside the user namespace, where it counts only that namespace's tasks
  (Linux 5.14+, a user other than root: the kernel exempts root's processes, and set outside the
  namespace it would count all of the user's). Where neither applies (root before 6.14), a fork
  bomb can run ahead of vwbench's count between two counts. The child's exit status reaches
  vwbench exactly (:data:`_WAITER`), so an exit code over 128 is not read as a signal.
  What does not hold there: it can *read* any file the user running vwbench can read
  outside the hidden folders (the home folder included; the audit hook refuses it, but the hook
  is not a boundary), and connect to Unix sockets elsewhere on the filesystem; what it reads can
  only come back through its output (the mapped vectors, ``describe()``, its error text), which
  vwbench prints and stores. Its memory together is not capped (no cgroup is made): every
  process may map ``memory_mb`` (``RLIMIT_AS``), but memfds and System V shared memory that are not
  mapped count against no limit (each memfd only up to ``output_mb``, ``RLIMIT_FSIZE``, and as
  many as it can open; the tmpfs bounds only the work folder's files), so it can hold more
  memory than ``memory_mb`` until the time limit ends it all with the namespace. Run untrusted
  submissions on a machine where that does no harm, or under a cgroup of your own (e.g.
  ``systemd-run --scope -p MemoryMax=... -p TasksMax=...``);
* a total output limit: what the child leaves in its work folder (and prints) over ``output_mb``
  fails the run, checked after it ends; with namespaces the tmpfs also stops it during the run,
  without them the disk can fill until the run ends;
* where namespaces are not permitted, only an audit hook in the child (:mod:`vwbench.submissions.child`),
  which the submission's code can disable and which native code never meets, and the kernel's
  limits. vwbench then logs one warning per process, and the result's sandbox facts say so
  (``isolation``). Run only trusted submissions there.

Whatever the child does (crash, hang, exhaust memory, print megabytes, return garbage, replace its
output files by links, FIFOs or folders), the caller gets either validated output or a
:class:`SubmissionFailure` whose one-line message says what happened; the child's own words
(its exception text, its last stderr line) are quoted as such, with control characters collapsed.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import resource
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vwbench.errors import UserError
from vwbench.jsonio import parse_json

CHILD = Path(__file__).with_name("child.py")
EXIT_SUBMISSION_ERROR = 3
EXIT_SETUP_FAILED = 90  # the namespace setup script's own failure (it writes out/setup-error first)
TAIL_BYTES = 2000
MAX_JSON_BYTES = 64_000
MAX_COPY_BYTES = 64 * 2**20  # a submission folder larger than this is not copied in (validate allows 20 MB)
MAX_COPY_FILES = 1000
MAX_COPY_DEPTH = 16  # folders inside a submission (the walk holds one descriptor per level)
STAGES = ("import", "fit", "map", "describe")
WORK_FOLDERS = ("in", "out", "run", "tmp", "logs")


class SubmissionFailure(UserError):
    """A submission crashed, hung, ran out of a limit or returned unusable output."""


@dataclass(frozen=True)
class Limits:
    time_limit_s: float = 300.0
    memory_mb: int = 4096  # address space of each process; importing torch alone maps about 650 MB
    output_mb: int = 256  # all the child may write: its files in total, and stdout and stderr each
    threads: int = 1
    processes: int = 512  # its processes and threads at once, with namespaces (0: no cap); see process_cap()

    def __post_init__(self) -> None:
        if self.processes and self.processes < MIN_PROCESSES:  # the sandbox's own shell and waiter count too
            raise ValueError(f"Limits.processes must be 0 (no cap) or at least {MIN_PROCESSES}, not {self.processes}")


MIN_PROCESSES = 16


# Run by ``sh`` as root of the new user namespace (pid 1 of the new pid namespace), before Python:
# $1 the work folder, $2 the tmpfs size in bytes, $3 the process cap (0: none), $4 a count K, then K
# folders (relative to the temp folder) to keep visible in it, then the child's command, which
# starts with :data:`_WAITER` (``python -c _WAITER``). Mounts change only the
# mount namespace's own copies. The work folder's out/ on disk stays writable only to this script
# (the child's out/ is the tmpfs, stacked on it), which copies the child's regular output files down
# once every other process in the namespace is dead (``kill -1`` from pid 1). The child runs without
# capabilities, so it cannot undo a mount; mounts copied into any namespace it creates itself are
# locked read-only by the kernel. Exit status: 90 for a setup failure (with out/setup-error saying
# which step), else the waiter's (the child's code, 128 + N for a child killed by signal N: a shell
# cannot tell the two apart, hence out/status). out/status, written through descriptor 5 (opened
# just before the tmpfs hides out/ on disk, so the child can neither see nor write it), holds lines:
# ``pid_max M`` where the pid namespace's own pid_max was set, then the waiter's ``exit N`` or
# ``signal N`` (the child's exact wait status), then ``done`` once the outputs are copied down.
_SETUP = r"""
set -eu
W=$1 SIZE=$2 NPROC=$3 NKEEP=$4
shift 4
P=${W%/*} N=${W##*/}
fail() { printf '%s\n' "$1" > "$W/out/setup-error"; exit 90; }
[ -n "$P" ] || fail "the work folder is not in a temp folder"
# the process cap. Linux 6.14+ gives each pid namespace its own pid_max (root of the owning user
# namespace may lower it; a nested namespace's processes take a pid here too), which binds any
# user, root included. Pids below 300 are not reused once the counter wraps, hence the allowance:
# the kernel refuses a fork beyond NPROC to NPROC + 300 tasks, and vwbench stops a run at NPROC.
# Set now, while /proc is writable; older kernels refuse, and then only the waiter's RLIMIT_NPROC
# (not for root) and vwbench's count apply.
PIDMAX=
if [ "$NPROC" -gt 0 ] && echo $((NPROC + 300)) 2>/dev/null > /proc/sys/kernel/pid_max; then PIDMAX=$((NPROC + 300)); fi
# Unix sockets on the filesystem are outside the network namespace's reach: empty tmpfs over the
# folders that hold them (the temp folder keeps only the work folder, bound back in)
# device nodes: a read-only mount does not stop writes to a device (a loop device, /dev/kmsg), so
# /dev becomes a tmpfs holding only the harmless ones, bound from the real /dev
mkdir "$W/logs/dev"
mount -t tmpfs -o size=64k,mode=0755,nosuid,noexec vwbench-dev "$W/logs/dev" || fail "cannot mount a tmpfs for /dev"
for n in null zero full random urandom; do
    : > "$W/logs/dev/$n" && mount --bind "/dev/$n" "$W/logs/dev/$n" || fail "cannot bind /dev/$n"
done
ln -s /proc/self/fd "$W/logs/dev/fd" && ln -s fd/0 "$W/logs/dev/stdin" && ln -s fd/1 "$W/logs/dev/stdout" && ln -s fd/2 "$W/logs/dev/stderr"
mount --move "$W/logs/dev" /dev || fail "cannot replace /dev"
mount -t tmpfs -o size=64k,mode=0755 vwbench-hide "$W/logs" || fail "cannot mount a tmpfs"
mkdir "$W/logs/$N"
mount --bind "$W" "$W/logs/$N" || fail "cannot bind the work folder"
# what the child needs from inside the temp folder (a Python or a vwbench checkout under /tmp, as
# in a CI clone) is bound back too, read-only like the rest below
while [ "$NKEEP" -gt 0 ]; do
    K=$1; shift; NKEEP=$((NKEEP - 1))
    mkdir -p "$W/logs/$K" && mount --rbind "$P/$K" "$W/logs/$K" || fail "cannot keep $P/$K visible"
done
mount --move "$W/logs" "$P" || fail "cannot hide the temp folder $P"
for d in /run /var/tmp /tmp; do
    case "$P/" in "$d"/*) continue ;; esac  # the temp folder is inside: hidden above, all but the work folder
    if [ "$d" != "$P" ] && [ -d "$d" ] && [ ! -L "$d" ]; then mount -t tmpfs -o size=4k,mode=0755 vwbench-hide "$d" || fail "cannot hide $d"; fi
done
mount --bind "$W/out" "$W/out" || fail "cannot bind-mount the work folder"
while read -r _ mp _; do
    [ "$mp" = "$W/out" ] && continue
    # /proc/self/mounts writes a space, tab, newline or backslash in a path as an octal escape,
    # which no path here would match: such a mount point cannot be checked, so the setup fails
    case $mp in *\\*) fail "a mount point's path holds an escaped character ($mp); it cannot be made read-only" ;; esac
    case $mp in /dev/null|/dev/zero|/dev/full|/dev/random|/dev/urandom) opts=remount,bind,ro ;; *) opts=remount,bind,ro,nodev,nosuid ;; esac
    # a mount hidden under another (the old /proc's under the new one) is skipped: no path reaches it
    mount -o "$opts" "$mp" 2>/dev/null || ! mountpoint -q "$mp" || fail "cannot make the mount point $mp read-only"
done < /proc/self/mounts
# opened only now (a file open for writing on a mount keeps it from being made read-only), through
# the still writable out/ on disk, which the tmpfs then hides from the child
exec 5> "$W/out/status" || fail "cannot write the status file"
[ -z "$PIDMAX" ] || printf 'pid_max %s\n' "$PIDMAX" >&5
mount -t tmpfs -o "size=$SIZE,nr_inodes=20000,mode=0700" vwbench-work "$W/tmp" || fail "cannot mount a tmpfs on the work folder"
mkdir "$W/tmp/.run" "$W/tmp/.out"
mount --bind "$W/tmp/.run" "$W/run" || fail "cannot bind the tmpfs"
mount --bind "$W/tmp/.out" "$W/out" || fail "cannot bind the tmpfs"
cd "$W/run"
rc=0
"$@" || rc=$?
# "kill -s KILL -1" is an illegal option to dash's kill: "--" first
kill -s KILL -- -1 2>/dev/null || :
umount -l "$W/out"  # lazily: a process killed just above may still hold a file there
avail=$(stat -f -c '%a*%S' "$W/tmp" 2>/dev/null) || avail=0
[ $(($avail)) -ge 1048576 ] || : > "$W/out/tmpfs-full"  # under 1 MB left: the output limit was reached
# the child could replace .out (or a file in it) by a link: copy only a real folder's regular files
if [ -d "$W/tmp/.out" ] && [ ! -L "$W/tmp/.out" ]; then
    for f in mapped.safetensors describe.json error.json; do
        if [ -f "$W/tmp/.out/$f" ] && [ ! -L "$W/tmp/.out/$f" ]; then cp -P -- "$W/tmp/.out/$f" "$W/out/$f" || :; fi
    done
fi
printf 'done\n' >&5
exit "$rc"
"""

# Run by the setup script's Python (``python -I -S -c _WAITER NPROC setpriv ... child``) inside the
# namespaces, with the namespace root's capabilities, which the child then drops: so the child
# (same uid, no capabilities) may signal it but can neither ptrace it nor reach its descriptors.
# It sets RLIMIT_NPROC to NPROC when that is > 0 (set inside the user namespace it counts only
# this namespace's tasks, Linux 5.14+; vwbench passes 0 where it would not bind or would count the
# user's other processes), starts the child, and writes the child's exact wait status to the
# setup script's descriptor 5 (closed in the child): a shell's $? reads ``sys.exit(130)`` and a
# SIGINT death alike. It is the child subreaper of whatever the child leaves running, so once the
# child has ended it kills everything else in the namespace and reaps it: the setup script (whose
# shell cannot retry a fork) then has the pids it needs even after a fork bomb filled the cap.
# Its own exit status mirrors the shell's convention.
_WAITER = r"""
import os, signal, sys
nproc, argv = int(sys.argv[1]), sys.argv[2:]
try:
    import ctypes
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER: orphans become ours, not the shell's
except (ImportError, OSError, AttributeError):
    pass
if nproc > 0:
    import resource
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))
pid = os.fork()
if pid == 0:
    try:
        os.close(5)
        os.execvp(argv[0], argv)
    except OSError as exc:
        os.write(2, ("vwbench sandbox: cannot start %s: %s\n" % (argv[0], exc.strerror)).encode())
    os._exit(127)
while True:  # orphans that end meanwhile are reaped here
    ended, status = os.waitpid(-1, 0)
    if ended == pid:
        break
if os.WIFSIGNALED(status):
    os.write(5, b"signal %d\n" % os.WTERMSIG(status))
    code = 128 + os.WTERMSIG(status)
else:
    os.write(5, b"exit %d\n" % os.WEXITSTATUS(status))
    code = os.WEXITSTATUS(status)
try:
    os.kill(-1, signal.SIGKILL)  # all but pid 1 (the setup shell) and this process
except OSError:
    pass
while True:
    try:
        os.waitpid(-1, 0)
    except ChildProcessError:
        break
sys.exit(code)
"""


def _needed_under(folder: Path) -> list[str]:
    """The folders the child's Python needs (its installation, the virtual environment, vwbench's
    checkout) that lie inside ``folder``, the temp folder the namespace hides, relative to it;
    outermost only."""
    base = os.path.realpath(folder)
    from vwbench.executors.ray_executor import package_root

    wanted = {os.path.realpath(p) for p in (sys.prefix, sys.base_prefix, sys.exec_prefix, os.path.dirname(os.path.realpath(sys.executable)), package_root(), CHILD.parent)}
    inside = sorted(p for p in wanted if p.startswith(base + os.sep))
    return [os.path.relpath(p, base) for p in inside if not any(p != q and p.startswith(q + os.sep) for q in inside)]


def _isolated_command(work: Path, size: int, argv: list[str], processes: int = 0) -> list[str]:
    keep = _needed_under(work.parent)
    waiter = [sys.executable, "-I", "-S", "-c", _WAITER, str(processes if processes > 0 and _nproc_rlimit_binds() else 0),
              "setpriv", "--inh-caps=-all", "--bounding-set=-all", "--no-new-privs", "--"]
    return [shutil.which("unshare") or "unshare", "-rnmipf", "--mount-proc", "--kill-child", "sh", "-c", _SETUP, "vwbench-sandbox", str(work), str(size),
            str(max(0, processes)), str(len(keep)), *keep, *waiter, *argv]


def _nproc_rlimit_binds() -> bool:
    """Whether ``RLIMIT_NPROC`` set inside a new user namespace caps that namespace's tasks: Linux
    5.14+ counts them per user namespace (before, it counted all of the user's processes, so a cap
    would stop a busy user's child from starting at all), and it never binds a user who is root
    outside (the kernel exempts root's processes, in any namespace)."""
    try:
        version = tuple(int(part) for part in os.uname().release.split("-")[0].split(".")[:2])
    except ValueError:
        return False
    return os.getuid() != 0 and version >= (5, 14)


@functools.lru_cache(maxsize=1)
def isolation_available() -> bool:
    """Whether the namespaces and the read-only setup work here: the whole setup is run once on a
    probe folder, whose child must be able to write its tmpfs but not the rest of the folder (user
    namespaces are often forbidden in containers and CI). It also finds whether the kernel let the
    setup lower the pid namespace's pid_max (:func:`process_cap`)."""
    global _probe_failure, _probe_pid_max
    missing = [tool for tool in ("unshare", "setpriv", "mount", "umount", "mountpoint", "sh") if shutil.which(tool) is None]
    if missing:
        _probe_failure = f"{', '.join(missing)} not found"
        return False
    with tempfile.TemporaryDirectory(prefix="vwbench-probe-") as tmp:
        work = Path(tmp)
        for sub in WORK_FOLDERS:
            (work / sub).mkdir()
        # the child's Python and child.py must be reachable inside (not under the hidden temp folder);
        # child.py's path goes in the environment, so no probe process looks like a child by its command line
        check = ('echo ok > "$1/out/describe.json" && echo ok > "$1/run/probe" && ! (echo no > "$1/in/probe") 2>/dev/null '
                 '&& "$2" -I -c "import os; open(os.environ[\'VWBENCH_PROBE_FILE\']).close()"')
        command = _isolated_command(work, 2**20, ["sh", "-c", check, "probe", str(work), sys.executable], Limits().processes)
        try:
            done = subprocess.run(command, capture_output=True, timeout=20, cwd=work, env={**_clean_env(work, 1), "VWBENCH_PROBE_FILE": str(CHILD)})
        except (OSError, subprocess.SubprocessError) as exc:
            _probe_failure = one_line(f"{type(exc).__name__}: {exc}")[:200]
            return False
        status = _status_of((work / "out" / "status").read_bytes()[:1000] if (work / "out" / "status").is_file() else None)
        _probe_pid_max = status.pid_max
        ok = (done.returncode == 0 and status.code == 0 and status.done and (work / "out" / "describe.json").is_file()
              and not (work / "in" / "probe").exists() and not (work / "run" / "probe").exists())
        if not ok:
            said = (work / "out" / "setup-error").read_bytes()[:1000] if (work / "out" / "setup-error").is_file() else None  # the probe's own folder
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-1:] if done.stderr else []
            if done.returncode == 0 and not tail:
                tail = [f"the setup exited with code 0 but reported {' / '.join(status.lines) or 'no status'}"]
            _probe_failure = one_line((said or b"").decode(errors="replace").strip() or (tail[0] if tail else f"the setup exited with code {done.returncode}"))[:200]
        return ok


_probe_failure = "unprivileged user namespaces are not permitted"  # why isolation_available() said no, for the warning
_probe_pid_max: int | None = None  # the pid_max the probe's setup could set in its pid namespace (None: the kernel refused)


@dataclass(frozen=True)
class _Status:
    """What the setup script and the waiter wrote to ``out/status``."""

    lines: tuple[str, ...] = ()
    code: int | None = None  # the child's: its exit code, or -N where signal N killed it; None: not reported
    pid_max: int | None = None
    done: bool = False  # the outputs were copied down after every process in the namespace was killed


def _status_of(data: bytes | None) -> _Status:
    lines = tuple(one_line(line, 100) for line in (data or b"").decode("ascii", "replace").splitlines()[:8])
    code, pid_max = None, None
    for line in lines:
        word, _, number = line.partition(" ")
        if number.isdigit() and word in ("exit", "signal", "pid_max"):
            if word == "pid_max":
                pid_max = int(number)
            else:
                code = int(number) if word == "exit" else -int(number)
    return _Status(lines, code, pid_max, "done" in lines)


def process_cap() -> str:
    """How this machine caps a sandboxed run's processes and threads (the kernel's limits, which
    make a fork bomb fail, and vwbench's own count, which stops the run), for the result's facts
    and the tests: "none" without namespaces."""
    if not isolation_available():
        return "none: no pid namespace"
    kernel = []
    if _probe_pid_max is not None:
        kernel.append("the pid namespace's pid_max")
    if _nproc_rlimit_binds():
        kernel.append("RLIMIT_NPROC in the user namespace")
    return (" and ".join(kernel) if kernel else "no kernel limit here (needs Linux 6.14+, or 5.14+ and a user other than root)") + "; vwbench stops a run at the limit"


def network_namespace_available() -> bool:
    """The former name of :func:`isolation_available` (the network namespace is one of those used)."""
    return isolation_available()


_warned_unisolated = False


def _warn_unisolated() -> None:
    """Once per process, through the ``vwbench`` logger (printed on stderr when nothing configured it)."""
    global _warned_unisolated
    if not _warned_unisolated:
        _warned_unisolated = True
        logging.getLogger("vwbench").warning(
            f"warning: submission code runs without OS isolation here ({_probe_failure}): only an audit hook "
            "that the code itself can disable, and resource limits; run only trusted submissions")


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


def one_line(text: str, limit: int = 300) -> str:
    """``text`` (written by the child, or a folder name) on one line: newlines, escape sequences
    and other control or invisible characters collapsed to a space, at most ``limit`` characters."""
    text = text.encode("utf-8", "replace").decode("utf-8", "replace") if isinstance(text, str) else str(text)
    cleaned = "".join(c if c.isprintable() else " " for c in text)
    return " ".join(cleaned.split())[:limit]


def _clean_env(work: Path, threads: int) -> dict[str, str]:
    n = str(threads)
    return {
        "PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": str(work / "tmp"), "TMPDIR": str(work / "tmp"), "LANG": "C.UTF-8",
        "OMP_NUM_THREADS": n, "MKL_NUM_THREADS": n, "OPENBLAS_NUM_THREADS": n, "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
    }


# --- the submission's files: read once, never through a link -------------------------------------


@dataclass(frozen=True)
class SubmissionSnapshot:
    """A submission folder's files as read once (relative path, bytes), and their sha256: pass it
    to :func:`run_transfer_submission` in place of the folder so that every run executes exactly
    these bytes, whatever happens to the folder afterwards."""

    folder: Path
    files: tuple[tuple[str, bytes], ...]
    sha256: str


def snapshot_submission(folder: Path) -> SubmissionSnapshot:
    """Read ``folder``'s files (not hidden ones, not ``__pycache__``) without following links.
    A symbolic link, FIFO, device or socket in it is a :class:`SubmissionFailure`: a link could make
    the copy read a file outside the folder. The sha256 is computed as the submission's own (each
    file's relative path and content digest, in path order) over the files copied."""
    folder = Path(folder)
    found: list[tuple[str, bytes]] = []
    total = 0

    def walk(dir_fd: int, prefix: str) -> None:
        nonlocal total
        if prefix.count("/") > MAX_COPY_DEPTH:
            raise SubmissionFailure(f"{one_line(str(folder))}: folders nested deeper than {MAX_COPY_DEPTH} levels ({one_line(prefix[:200])}...); not copied into the sandbox")
        for name in sorted(os.listdir(dir_fd)):
            if name.startswith(".") or name == "__pycache__":
                continue
            rel = prefix + name
            st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
            if stat.S_ISLNK(st.st_mode) or not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a regular file or folder"
                raise SubmissionFailure(f"{one_line(str(folder))}: {one_line(rel)} is {what}; a submission holds only files and folders")
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC | (os.O_DIRECTORY if stat.S_ISDIR(st.st_mode) else 0), dir_fd=dir_fd)
            try:
                if stat.S_ISDIR(os.fstat(fd).st_mode):
                    walk(fd, rel + "/")
                    continue
                if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced since the stat
                    raise SubmissionFailure(f"{one_line(str(folder))}: {one_line(rel)} is not a regular file")
                data = _read_fd(fd, MAX_COPY_BYTES - total)
            finally:
                os.close(fd)
            total += len(data)
            found.append((rel, data))
            if total > MAX_COPY_BYTES or len(found) > MAX_COPY_FILES:
                raise SubmissionFailure(f"{one_line(str(folder))}: over {MAX_COPY_FILES} files or {MAX_COPY_BYTES // 2**20} MB; not copied into the sandbox")

    try:
        top = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        try:
            walk(top, "")
        finally:
            os.close(top)
    except OSError as exc:
        raise SubmissionFailure(f"{one_line(str(folder))}: cannot read the submission ({one_line(exc.strerror or str(exc))})") from None
    digest = hashlib.sha256()
    for rel, data in sorted(found, key=lambda item: Path(item[0]).parts):
        digest.update(rel.encode() + b"\0" + hashlib.sha256(data).digest())
    return SubmissionSnapshot(folder, tuple(found), digest.hexdigest())


def _write_snapshot(snapshot: SubmissionSnapshot, dest: Path) -> None:
    dest.mkdir()
    for rel, data in snapshot.files:
        path = dest / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "xb") as f:
            f.write(data)


# --- reading what the child left, through descriptors ----------------------------------------------


class _NotRegular(Exception):
    """A child's output name that is a link, FIFO, device or folder."""


def _read_fd(fd: int, limit: int) -> bytes:
    """At most ``limit + 1`` bytes from ``fd`` (one more than allowed tells the caller it was over)."""
    chunks, left = [], max(0, limit) + 1
    while left > 0:
        chunk = os.read(fd, min(left, 2**20))
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def _read_regular(dir_fd: int | None, name: str, limit: int) -> bytes | None:
    """The first ``limit + 1`` bytes of the regular file ``name`` in ``dir_fd``; ``None`` when it is
    missing, :class:`_NotRegular` when it is anything else (never followed, never blocks)."""
    if dir_fd is None:
        return None
    try:
        fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    except OSError:  # ELOOP: a symbolic link; or anything unreadable
        raise _NotRegular(name) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise _NotRegular(name)
        return _read_fd(fd, limit)
    finally:
        os.close(fd)


def _open_dir(name: str, dir_fd: int | None) -> int | None:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except OSError:
        return None


def _bytes_in(dir_fd: int) -> tuple[int, int]:
    """Total size of the regular files under ``dir_fd`` (links not followed, hard links once),
    and the largest one's."""
    seen, total, largest = set(), 0, 0
    try:
        for _, _, files, root_fd in os.fwalk(".", dir_fd=dir_fd, follow_symlinks=False):
            for name in files:
                try:
                    st = os.stat(name, dir_fd=root_fd, follow_symlinks=False)
                except OSError:
                    continue
                if stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                    seen.add((st.st_dev, st.st_ino))
                    total += st.st_size
                    largest = max(largest, st.st_size)
    except (OSError, RecursionError):
        pass
    return total, largest


def _tail(handle) -> str:
    """The last non-empty line of the child's stderr, read through the parent's own handle."""
    try:
        fd = handle.fileno()
        size = os.fstat(fd).st_size
        text = os.pread(fd, TAIL_BYTES, max(0, size - TAIL_BYTES)).decode("utf-8", "replace")
    except OSError:
        return ""
    lines = [line for line in text.splitlines() if line.strip()]
    return one_line(lines[-1]) if lines else ""


# --- the work folder ---------------------------------------------------------------------------------

WORK_PREFIX = "vwbench-sub-"


def _empty(dir_fd: int) -> None:
    for name in os.listdir(dir_fd):
        try:
            os.unlink(name, dir_fd=dir_fd)
            continue
        except IsADirectoryError:
            pass
        except OSError:
            continue
        sub = _open_dir(name, dir_fd)
        if sub is None:
            continue
        try:
            _empty(sub)
        finally:
            os.close(sub)
        try:
            os.rmdir(name, dir_fd=dir_fd)
        except OSError:
            pass


def _remove_work(path: str, fd: int) -> None:
    """Delete the work folder; never raises. The folder is emptied through the descriptor taken
    when it was made, so a child that renamed it or put a link in its place (possible only without
    namespaces) leaves no traceback: a link at the name is removed, the folder itself wherever it is
    now. Processes that survived the child (again only without namespaces) may keep writing: a few
    tries, then what is left goes with the orphan cleanup of a later run."""
    try:
        for attempt in range(3):
            try:
                _empty(fd)
            except (OSError, RecursionError):
                pass
            if not os.listdir(fd):
                break
            time.sleep(0.2 * (attempt + 1))
        try:
            same = os.path.samestat(os.lstat(path), os.fstat(fd))
        except OSError:
            same = False
        if same:
            os.rmdir(path)
            return
        if os.path.islink(path):
            os.unlink(path)
        moved = os.readlink(f"/proc/self/fd/{fd}")  # where the child put it
        if moved.startswith("/") and os.path.samestat(os.lstat(moved), os.fstat(fd)):
            os.rmdir(moved)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_orphaned_work_folders(root: Path | None = None) -> int:
    """Delete the sandbox work folders (``vwbench-sub-<pid>-*`` in the temp folder) whose vwbench
    process is gone: one killed by ``kill -9`` could not remove its own (its sandboxed child dies
    with it). A folder whose process still runs, or that is not ours to delete, is left; a symbolic
    link of ours by such a name (left by a child that replaced its folder) is removed. Returns how
    many were removed."""
    root = Path(root or tempfile.gettempdir())
    removed = 0
    try:
        candidates = list(root.glob(f"{WORK_PREFIX}*-*"))
    except OSError:
        return 0
    for folder in candidates:
        pid = folder.name[len(WORK_PREFIX):].split("-", 1)[0]
        try:
            st = folder.lstat()
            if not pid.isdigit() or st.st_uid != os.getuid() or not (stat.S_ISDIR(st.st_mode) or stat.S_ISLNK(st.st_mode)):
                continue
            os.kill(int(pid), 0)
            continue  # its process (or one that reuses the pid) is alive: leave it
        except ProcessLookupError:
            pass
        except (PermissionError, OSError, OverflowError):
            continue  # a live process of another user, or a pid that cannot be one
        if stat.S_ISLNK(st.st_mode):
            try:
                folder.unlink()
            except OSError:
                continue
        else:
            fd = _open_dir(str(folder), None)
            if fd is None:
                continue
            _remove_work(str(folder), fd)
        removed += not os.path.lexists(folder)
    return removed


# --- the run -------------------------------------------------------------------------------------------


def run_transfer_submission(
    folder: Path | SubmissionSnapshot,
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

    ``folder``: the submission folder, read afresh, or a :class:`SubmissionSnapshot` taken once
    (then every run executes the same bytes, whose sha256 is the facts' ``code_sha256``).
    Returns ``(mapped [m, dt] float32, the method's describe() dict, sandbox facts)``; raises
    :class:`SubmissionFailure` for anything else.
    """
    from safetensors.numpy import save_file

    from vwbench.submissions.safe_tensors import TensorFileError, read_tensors_from_bytes

    label = one_line(label, 200)
    snapshot = folder if isinstance(folder, SubmissionSnapshot) else snapshot_submission(folder)
    remove_orphaned_work_folders()
    isolated = isolation_available()
    if not isolated:
        _warn_unisolated()
    output_limit = limits.output_mb * 2**20
    tmp = tempfile.mkdtemp(prefix=f"{WORK_PREFIX}{os.getpid()}-")
    work_fd = os.open(tmp, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        work = Path(tmp)
        for sub in WORK_FOLDERS:
            (work / sub).mkdir()
        _write_snapshot(snapshot, work / "submission")
        request = {"entry": str(work / "submission" / entry), "class": class_name, "tokens": tokens, "init_words": init_words}
        (work / "in" / "request.json").write_text(json.dumps(request))
        save_file(
            {"source": np.ascontiguousarray(source, np.float32), "target": np.ascontiguousarray(target, np.float32), "vectors": np.ascontiguousarray(vectors, np.float32)},
            str(work / "in" / "arrays.safetensors"),
        )
        before = _bytes_in(work_fd)[0]
        command = [sys.executable, "-I", "-B", str(CHILD), str(work)]
        if isolated:
            command = _isolated_command(work, output_limit, command, limits.processes)
        start = time.monotonic()
        with (work / "logs" / "stdout").open("wb") as out, (work / "logs" / "stderr").open("w+b") as err:
            proc = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=out, stderr=err, cwd=work / "run", env=_clean_env(work, limits.threads),
                preexec_fn=_limit(limits), start_new_session=True, close_fds=True,
            )
            crowded = 0  # the tasks counted in its namespace when it reached its process limit
            try:
                code, crowded = _watch(proc, limits, start, isolated)
            finally:
                try:  # the child, and anything it left running in its process group (in a pid namespace: everything it started)
                    os.killpg(proc.pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
                proc.wait()
            if crowded:
                raise SubmissionFailure(f"{label}: reached its limit of {limits.processes} processes and threads at once "
                                        f"({crowded} running: a fork bomb?) and was stopped")
            if code is None:
                raise SubmissionFailure(f"{label}: ran longer than the {limits.time_limit_s:g} s time limit and was stopped")
            tail = _tail(err)
            printed = max(os.fstat(out.fileno()).st_size, os.fstat(err.fileno()).st_size)
        wall = round(time.monotonic() - start, 3)
        out_fd = _open_dir("out", work_fd)
        try:
            total, largest = _bytes_in(work_fd)
            written = total - before
            if written > output_limit:
                raise SubmissionFailure(f"{label}: wrote more than the {limits.output_mb} MB output limit ({written / 2**20:.1f} MB in its work folder, printing included)")
            if isolated and code == EXIT_SETUP_FAILED and _safe_read(out_fd, "setup-error", 1000) is not None:
                why = one_line((_safe_read(out_fd, "setup-error", 1000) or b"").decode("utf-8", "replace"))
                raise SubmissionFailure(f"{label}: not run: the sandbox could not be set up ({why})")
            if isolated:  # the shell's status says 128 + N for both exit(128 + N) and signal N: the waiter's record does not
                status = _status_of(_safe_read(out_fd, "status", 1000))
                if status.code is None:
                    raise SubmissionFailure(f"{label}: its process ended but the sandbox did not learn how (the sandbox's shell exited with code {code}; "
                                            "was the process that waits for it killed?)" + (f"; its last stderr line: {tail}" if tail else ""))
                if not status.done:
                    raise SubmissionFailure(f"{label}: {_describe_status(status.code)}, and then the sandbox failed to collect its output "
                                            f"(the sandbox's shell exited with code {code})" + (f"; its last stderr line: {tail}" if tail else ""))
                code = status.code
            if code != 0:
                # the kernel's facts, not the child's words, say whether it hit the output limit:
                # a file (or stdout/stderr) at the per-file limit, or (namespaces) the tmpfs full
                hit = max(largest, printed) >= output_limit or (isolated and _safe_read(out_fd, "tmpfs-full", 0) is not None)
                raise SubmissionFailure(f"{label}: {_explain(code, out_fd, tail, limits, hit)}")
            try:
                data = _read_regular(out_fd, "mapped.safetensors", output_limit)
            except _NotRegular:
                raise SubmissionFailure(f"{label}: its output out/mapped.safetensors is not a regular file (a link, FIFO, device or folder)") from None
            if data is None:
                raise SubmissionFailure(f"{label}: its process ended without an error but before its map() output was written "
                                        "(does fit() or map() call sys.exit or os._exit?)")
            if len(data) > output_limit:
                raise SubmissionFailure(f"{label}: its output is over the {limits.output_mb} MB output limit")
            try:
                mapped = read_tensors_from_bytes(data, "mapped.safetensors", max_file_bytes=output_limit).tensors.get("mapped")
            except TensorFileError as exc:
                raise SubmissionFailure(f"{label}: its output is unusable: {one_line(str(exc), 500)}") from None
            if mapped is None or mapped.ndim != 2 or mapped.shape[0] != vectors.shape[0]:
                shape = None if mapped is None else tuple(mapped.shape)
                raise SubmissionFailure(f"{label}: map() returned shape {shape}, expected ({vectors.shape[0]}, d_target)")
            describe = _describe_from(_safe_read(out_fd, "describe.json", MAX_JSON_BYTES))
        finally:
            if out_fd is not None:
                os.close(out_fd)
        facts = {
            "network_isolation": "unshare -rnmipf" if isolated else "audit hook only",
            "process_cap": process_cap() if limits.processes > 0 else "none: Limits.processes is 0",
            "isolation": ("user, network, mount (read-only filesystem but a tmpfs work folder) and pid namespaces" if isolated
                          else "none: an audit hook the code can disable, and resource limits; run only trusted submissions"),
            "code_sha256": snapshot.sha256, "wall_time_s": wall, **limits.__dict__,
        }
        return mapped.numpy(), describe, facts
    finally:
        _remove_work(tmp, work_fd)


def _safe_read(dir_fd: int | None, name: str, limit: int) -> bytes | None:
    """:func:`_read_regular`, with anything but a regular file counted as missing."""
    try:
        return _read_regular(dir_fd, name, limit)
    except _NotRegular:
        return None


def _describe_from(data: bytes | None) -> dict:
    if data is None:
        return {}
    if len(data) > MAX_JSON_BYTES:
        return {"describe": "omitted: over 64 kB"}
    try:
        payload = parse_json(data.decode("utf-8"))
    except ValueError:
        return {}
    return payload if isinstance(payload, dict) else {}


def _read_describe(path: Path) -> dict:
    """The ``describe.json`` at ``path`` (a regular file read without following links), as a dict."""
    try:
        fd = os.open(Path(path).parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return {}
    try:
        return _describe_from(_safe_read(fd, Path(path).name, MAX_JSON_BYTES))
    finally:
        os.close(fd)


def _explain(code: int, out_fd: int | None, tail: str, limits: Limits, output_limit_hit: bool = False) -> str:
    why = _why(code, out_fd, tail, limits)
    if output_limit_hit:  # Python ignores SIGXFSZ: writes fail with EFBIG; a full tmpfs is ENOSPC
        return f"wrote more than the {limits.output_mb} MB output limit (printing counts) ({why[:200]})"
    return why


def _why(code: int, out_fd: int | None, tail: str, limits: Limits) -> str:
    if code == EXIT_SUBMISSION_ERROR:
        # the submission can write this file itself: anything but the child's own object is ignored,
        # and its text is quoted as the submission's words, on one line
        payload = None
        try:
            data = _safe_read(out_fd, "error.json", MAX_JSON_BYTES)
            if data is not None and len(data) <= MAX_JSON_BYTES:
                payload = parse_json(data.decode("utf-8"))
        except ValueError:
            payload = None
        if isinstance(payload, dict):
            message = one_line(str(payload.get("error")), 500)
            stage = payload.get("stage") if payload.get("stage") in STAGES else "?"
            hint = f" (its memory limit is {limits.memory_mb} MB)" if message.startswith("MemoryError") else ""
            return f"raised in {stage}(): {message}{hint}"
    if code < 0:
        sig = -code
        why = {
            signal.SIGXFSZ: f"wrote more than the {limits.output_mb} MB output limit",
            signal.SIGXCPU: "used more CPU time than its time limit",
            signal.SIGKILL: "was killed by SIGKILL, not by one of its limits (e.g. by the system's out-of-memory killer)",
            signal.SIGSEGV: "crashed (segmentation fault)",
        }.get(sig, _describe_status(code))
        return why
    # its last stderr line is its own words: never read as a verdict (a "MemoryError" there is not
    # taken to mean the memory limit was hit: the submission can print anything)
    return _describe_status(code) + (f"; its last stderr line: {tail}" if tail else "")


def _describe_status(code: int) -> str:
    """``exited with code N``, or ``was killed by signal N (SIGNAME)`` for ``-N``: a signal is named
    only where one ended the process (an exit code over 128 is an exit code)."""
    if code >= 0:
        return f"exited with code {code}"
    try:
        name = f" ({signal.Signals(-code).name})"
    except ValueError:
        name = ""
    return f"was killed by signal {-code}{name}"


WATCH_INTERVAL_S = 0.2  # how often a namespaced run's tasks are counted against Limits.processes


def _watch(proc: subprocess.Popen, limits: Limits, start: float, isolated: bool) -> tuple[int | None, int]:
    """Wait for the child until its time limit; with namespaces, count its tasks (processes and
    threads) every :data:`WATCH_INTERVAL_S` and stop waiting once they reach ``limits.processes``.
    Returns ``(its exit status or None when stopped, the tasks counted when at the limit or 0)``.
    The kernel's own caps (:func:`process_cap`) make the forks beyond them fail; this turns a run
    that keeps trying into a prompt failure that says why, and is the only cap where the kernel has
    none (then, between two counts, a fork bomb can run ahead of it)."""
    deadline = start + limits.time_limit_s
    watch = isolated and limits.processes > 0
    pid1: int | None = None
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            return None, 0
        try:
            return proc.wait(timeout=min(left, WATCH_INTERVAL_S) if watch else left), 0
        except subprocess.TimeoutExpired:
            pass
        if watch:
            pid1 = pid1 or _namespace_init(proc.pid)
            count = _tasks_in_namespace(pid1) if pid1 else 0
            # checked after counting: a pid1 that ended meanwhile, its number reused by a host process, is not counted
            if count >= limits.processes and _in_new_pid_namespace(pid1, proc.pid):
                return None, count


def _namespace_init(unshare_pid: int) -> int | None:
    """The host pid of ``unshare --fork``'s child: the setup shell, pid 1 of the new pid namespace."""
    try:
        with open(f"/proc/{unshare_pid}/task/{unshare_pid}/children") as f:
            children = f.read().split()
    except OSError:
        return None
    return int(children[0]) if children and children[0].isdigit() else None


def _in_new_pid_namespace(pid: int | None, unshare_pid: int) -> bool:
    """Whether ``pid`` is in the pid namespace that ``unshare`` (our child, so its pid cannot be
    reused before we reap it) made for its children."""
    try:
        return pid is not None and os.stat(f"/proc/{pid}/ns/pid").st_ino == os.stat(f"/proc/{unshare_pid}/ns/pid_for_children").st_ino
    except OSError:
        return False


def _tasks_in_namespace(pid1: int) -> int:
    """The processes and threads in the pid namespace of ``pid1``, counted through its own /proc
    (the namespace's procfs, reached through ``pid1``'s root; only listed, nothing read); 0 when
    it cannot be read (the run ended meanwhile)."""
    root = f"/proc/{pid1}/root/proc"
    total = 0
    try:
        entries = os.listdir(root)
    except OSError:
        return 0
    for entry in entries:
        if entry.isdigit():
            try:
                total += len(os.listdir(f"{root}/{entry}/task"))
            except OSError:
                pass  # gone meanwhile
    return total
