"""The sandbox after the red-team review: the kernel's namespaces are the boundary where permitted
(the audit hook can be disabled by the code it watches), the output is bounded in total, the
parent reads what the child left without following links or blocking on FIFOs, the child's words
stay on one line, and the code that runs is the code that was read and hashed.

Namespace-only tests are skipped where unprivileged user namespaces are not permitted (CI
containers often forbid them); the fallback is tested everywhere by patching the availability
check."""

from __future__ import annotations

import logging
import os
import socket
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from vwbench.submissions import sandbox
from vwbench.submissions.sandbox import Limits, SubmissionFailure, isolation_available, run_transfer_submission, snapshot_submission

from .helpers import LSTSQ_BODY, hostile, planted, transfer_folder

FAST = Limits(time_limit_s=20, memory_mb=1024, output_mb=4)
needs_namespaces = pytest.mark.skipif(not isolation_available(), reason="unprivileged user namespaces (unshare -rnmipf) are not permitted here")

# What any submission can do to the child's audit hook (finding 1): its state is the child's own.
DISABLE_HOOK = """
import __main__, sys as _sys
__main__._refuse = lambda what: None
_sys.modules.pop("_posixsubprocess", None)
import _posixsubprocess as _fresh, subprocess as _sp
_sp._posixsubprocess = _fresh
"""


def run(folder, limits: Limits = FAST):
    source, target, tokens = planted()
    return run_transfer_submission(folder, "transfer.py", "Transfer", source, target, tokens, source[:5], [""] * 5, limits)


@pytest.fixture
def fallback(monkeypatch):
    """Runs as where namespaces are not permitted: the audit hook and the rlimits only."""
    monkeypatch.setattr(sandbox, "isolation_available", lambda: False)
    monkeypatch.setattr(sandbox, "_warned_unisolated", False)


def reporting(prelude: str, in_fit: str) -> str:
    """A lstsq submission whose describe() returns what ``in_fit`` put in ``self.info``."""
    body = textwrap.indent(textwrap.dedent(in_fit), " " * 8)
    return (f"import numpy as np, os, sys\n{textwrap.dedent(prelude)}\n\nclass Transfer:\n    info = None\n"
            f"    def fit(self, source, target, tokens):\n{body}\n        self.T = np.linalg.lstsq(source, target, rcond=None)[0]\n\n"
            "    def map(self, vectors):\n        return vectors @ self.T\n\n    def describe(self):\n        return {'info': self.info}\n")


def _processes_with(arg: str) -> list[int]:
    found = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if arg.encode() in f.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:
            pass
    return found


# --- A: OS isolation ---------------------------------------------------------------------------------


@needs_namespaces
def test_with_the_hook_disabled_the_kernel_still_contains_the_child(tmp_path: Path) -> None:
    home_probe = Path.home() / ".vwbench-escape-probe"
    victim = tmp_path / "victim.txt"
    victim.write_text("intact")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(tmp_path / "host.sock"))
    server.listen()
    in_fit = f"""
    import subprocess
    info = {{}}
    for name, path in (("tmp", {str(tmp_path / 'written.txt')!r}), ("home", {str(home_probe)!r})):
        try:
            open(path, "w").write("escaped")
            info[name] = "written"
        except OSError as exc:
            info[name] = type(exc).__name__
    for what, act in (("truncate", lambda: os.truncate({str(victim)!r}, 0)), ("remove", lambda: os.remove({str(victim)!r})),
                      ("signal_parent", lambda: os.kill({os.getpid()}, 0)),
                      ("unix_socket", lambda: socket.socket(socket.AF_UNIX).connect({str(tmp_path / 'host.sock')!r}))):
        try:
            act()
            info[what] = "done"
        except OSError as exc:
            info[what] = type(exc).__name__
    subprocess.Popen(["sleep", "987.654"], start_new_session=True)  # must die with the sandbox
    info["temp_folder"] = os.listdir({tempfile.gettempdir()!r})
    info["processes"] = sorted(p for p in os.listdir("/proc") if p.isdigit())
    self.info = info
    """
    try:
        _, describe, facts = run(transfer_folder(tmp_path, reporting(DISABLE_HOOK + "\nimport socket", in_fit)))
    finally:
        server.close()
        written = home_probe.exists()
        home_probe.unlink(missing_ok=True)
    info = describe["info"]
    assert "written" not in info.values() and "done" not in info.values(), info
    assert not written and not (tmp_path / "written.txt").exists() and victim.read_text() == "intact"
    kept = {k.split(os.sep)[0] for k in sandbox._needed_under(Path(tempfile.gettempdir()))}  # a Python or checkout under the temp folder
    shown = [name for name in info["temp_folder"] if name not in kept]
    assert len(shown) == 1 and shown[0].startswith(f"{sandbox.WORK_PREFIX}{os.getpid()}-"), info["temp_folder"]
    assert len(info["processes"]) <= 4  # the setup shell, Python and its sleep: nothing of the host's
    assert facts["network_isolation"] == "unshare -rnmipf" and "namespaces" in facts["isolation"]
    time.sleep(0.2)
    assert _processes_with("987.654") == []


def test_without_namespaces_one_warning_per_process_and_the_facts_say_so(tmp_path: Path, fallback, caplog) -> None:
    caplog.set_level(logging.WARNING, logger="vwbench")
    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    for _ in range(2):
        _, _, facts = run(folder)
    warnings = [r.getMessage() for r in caplog.records if "without OS isolation" in r.getMessage()]
    assert len(warnings) == 1 and "run only trusted submissions" in warnings[0] and "\n" not in warnings[0]
    assert facts["network_isolation"] == "audit hook only" and facts["isolation"].startswith("none")


# --- B: the total output ----------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["namespaces", "fallback"])
def test_many_files_each_under_the_file_limit_exceed_the_total(tmp_path: Path, mode: str, monkeypatch) -> None:
    if mode == "namespaces" and not isolation_available():
        pytest.skip("unprivileged user namespaces are not permitted here")
    if mode == "fallback":
        monkeypatch.setattr(sandbox, "isolation_available", lambda: False)
    in_fit = "for i in range(8):\n    open(f'fill{i}', 'wb').write(b'x' * (2**20 - 1))"
    with pytest.raises(SubmissionFailure, match="wrote more than the 4 MB output limit"):
        run(transfer_folder(tmp_path, hostile("", in_fit)))


# --- C: reading what the child left -------------------------------------------------------------------

SWAP = """
import atexit, os
def _swap():
    path = os.path.join(os.path.dirname(os.getcwd()), {where!r})
    if os.path.lexists(path):
        os.remove(path)
    {make}
    {after}
atexit.register(_swap)
"""


@pytest.mark.parametrize(
    "where, make, exit_code, expect",
    [
        ("out/describe.json", "os.symlink(SECRET, path)", None, "describe-empty"),
        ("out/describe.json", "os.mkfifo(path)", None, "describe-empty"),
        ("out/error.json", "os.mkfifo(path)", 3, "exited with code 3$"),
        ("out/error.json", "os.symlink(SECRET, path)", 3, "exited with code 3$"),
        ("logs/stderr", "os.symlink('/dev/zero', path)", 1, "exited with code 1"),
        ("out/mapped.safetensors", "os.symlink('/dev/zero', path)", None, "out/mapped.safetensors is not a regular file"),
        ("out/mapped.safetensors", "os.mkdir(path)", None, "out/mapped.safetensors is not a regular file"),
    ],
)
def test_output_files_replaced_by_links_fifos_or_folders(tmp_path: Path, fallback, where, make, exit_code, expect) -> None:
    secret = tmp_path / "secret.json"
    secret.write_text('{"token": "hunter2"}')
    after = "pass" if exit_code is None else f"os._exit({exit_code})"
    prelude = DISABLE_HOOK + f"SECRET = {str(secret)!r}\n" + SWAP.format(where=where, make=make, after=after)
    folder = transfer_folder(tmp_path / "s", hostile(prelude, "pass"))
    start = time.monotonic()
    if expect == "describe-empty":
        _, describe, _ = run(folder)
        assert describe == {} and "hunter2" not in str(describe)
    else:
        with pytest.raises(SubmissionFailure, match=expect) as info:
            run(folder)
        assert "hunter2" not in str(info.value) and "\n" not in str(info.value)
    assert time.monotonic() - start < 15  # a FIFO never blocks the parent


def test_a_child_that_replaces_its_work_folder_by_a_link_leaves_nothing_behind(tmp_path: Path, fallback) -> None:
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "keep.txt").write_text("intact")
    moved = tmp_path / "moved"
    prelude = DISABLE_HOOK + f"""
import atexit, os
def _swap():
    work = os.path.dirname(os.getcwd())
    os.rename(work, {str(moved)!r})
    os.symlink({str(victim)!r}, work)
atexit.register(_swap)
"""
    try:
        run(transfer_folder(tmp_path / "s", hostile(prelude, "pass")))
    except SubmissionFailure:
        pass  # either way: no traceback
    assert sorted(p.name for p in victim.iterdir()) == ["keep.txt"] and (victim / "keep.txt").read_text() == "intact"
    assert not moved.exists()
    assert not [p for p in Path(tempfile.gettempdir()).glob(f"{sandbox.WORK_PREFIX}{os.getpid()}-*")]


def test_orphaned_links_by_a_work_folder_name_are_removed(tmp_path: Path) -> None:
    from .test_sandbox_orphans import _dead_pid

    target = tmp_path / "target"
    target.mkdir()
    (target / "keep.txt").write_text("x")
    link = tmp_path / f"{sandbox.WORK_PREFIX}{_dead_pid()}-abc"
    link.symlink_to(target)
    assert sandbox.remove_orphaned_work_folders(tmp_path) == 1
    assert not os.path.lexists(link) and (target / "keep.txt").read_text() == "x"


def test_the_output_reader_never_follows_links_or_blocks(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"x" * 100)
    os.mkfifo(tmp_path / "fifo")
    (tmp_path / "link").symlink_to(tmp_path / "file")
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert sandbox._read_regular(fd, "file", 10) == b"x" * 11  # limit + 1: the caller sees it was over
        assert sandbox._read_regular(fd, "missing", 10) is None
        for name in ("fifo", "link"):
            with pytest.raises(sandbox._NotRegular):
                sandbox._read_regular(fd, name, 10)
    finally:
        os.close(fd)


# --- D: messages ----------------------------------------------------------------------------------------


def test_the_childs_text_stays_on_one_line_after_its_stage(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, hostile("", "raise RuntimeError('ok\\n\\x1b[1;32mPASSED: all checks passed\\x1b[0m\\r\\nvalid')"))
    with pytest.raises(SubmissionFailure) as info:
        run(folder)
    message = str(info.value)
    assert message.startswith("submission: raised in fit(): RuntimeError: ok") and message.isprintable()
    forged = transfer_folder(tmp_path / "f", hostile("import json", """
    json.dump({"stage": "fit(): fine\\nPASSED", "error": "x"}, open(os.path.join("..", "out", "error.json"), "w"))
    raise SystemExit(3)
    """).replace("import json", "import json, os"))
    with pytest.raises(SubmissionFailure, match=r"^submission: raised in \?\(\): x$"):
        run(forged)


def test_memoryerror_printed_by_the_submission_is_not_out_of_memory(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, hostile("import os, sys", "sys.stderr.write('MemoryError\\n'); sys.stderr.flush(); os._exit(1)"))
    with pytest.raises(SubmissionFailure) as info:
        run(folder)
    assert str(info.value) == "submission: exited with code 1; its last stderr line: MemoryError"


@pytest.mark.parametrize("text", ["OSError: [Errno 28] No space left on device", "OSError: [Errno 27] File too large"])
def test_an_output_error_printed_by_the_submission_is_not_the_output_limit(tmp_path: Path, text: str) -> None:
    folder = transfer_folder(tmp_path, hostile("import os, sys", f"sys.stderr.write({text!r} + '\\n'); sys.stderr.flush(); os._exit(1)"))
    with pytest.raises(SubmissionFailure) as info:
        run(folder)
    assert str(info.value) == f"submission: exited with code 1; its last stderr line: {text}"


def test_one_line_collapses_control_characters() -> None:
    assert sandbox.one_line("a\nb\x1b[0m\u202ec\td") == "a b [0m c d"


# --- E: the audit hook (defence in depth) ---------------------------------------------------------------------------


HOOK_CASES = {
    "dir_fd_via_proc_self": "fd = os.open('/proc/self', os.O_RDONLY | os.O_DIRECTORY)\nos.open('root/etc/hostname', os.O_RDONLY, dir_fd=fd)",
    "relative_os_open": "os.open('../in/request.json', os.O_RDONLY)",  # inside the work folder from the cwd, anywhere with a dir_fd
    "remove_outside": "os.remove(VICTIM)",
    "rename_outside": "os.rename(VICTIM, VICTIM + '.moved')",
    "truncate_outside": "os.truncate(VICTIM, 0)",
    "chmod_outside": "os.chmod(VICTIM, 0o666)",
    "mkdir_outside": "os.mkdir(VICTIM + '.d')",
    "link": "os.link(VICTIM, 'stolen')",
    "symlink": "os.symlink(VICTIM, 'stolen')",
    "listdir_outside": "os.listdir('/')",
    "kill_parent": "os.kill(os.getppid(), 0)",
    "sqlite": "import sqlite3\nsqlite3.connect(VICTIM + '.db')",
    "multiprocessing_spawn": "import multiprocessing as mp\np = mp.get_context('spawn').Process(target=print)\np.start()",
    "fork_exec": "import _posixsubprocess\n_posixsubprocess.fork_exec([b'/bin/true'], [b'/bin/true'], True, (), None, None, -1, -1, -1, -1, -1, -1, 0, 1, True, False, -1, None, None, None, -1, None, False)",
    "ctypes_libc": "import ctypes\nctypes.CDLL(None)",
}


@pytest.mark.parametrize("case", sorted(HOOK_CASES))
def test_the_hook_refuses(tmp_path: Path, case: str, fallback) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("intact")
    folder = transfer_folder(tmp_path / "s", hostile(f"import os\nVICTIM = {str(victim)!r}", HOOK_CASES[case]))
    with pytest.raises(SubmissionFailure, match=r"raised in fit\(\): PermissionError: vwbench sandbox: "):
        run(folder)
    assert victim.read_text() == "intact" and sorted(p.name for p in tmp_path.iterdir()) == ["s", "victim.txt"]


def test_the_hook_counts_o_trunc_as_writing(tmp_path: Path, fallback) -> None:
    # /dev/null is a read root: truncating it is harmless should this regress (a package file would not be)
    folder = transfer_folder(tmp_path, hostile("import os", "os.open('/dev/null', os.O_RDONLY | os.O_TRUNC)"))
    with pytest.raises(SubmissionFailure, match=r"PermissionError: vwbench sandbox: opening /dev/null"):
        run(folder)


def test_what_a_method_legitimately_does_still_works(tmp_path: Path, fallback) -> None:
    in_fit = """
    import shutil, tempfile
    with tempfile.TemporaryDirectory() as d:
        os.makedirs(os.path.join(d, "a", "b"))
        open(os.path.join(d, "a", "b", "f.npy"), "wb").write(b"x")
    open("cache.bin", "wb").write(b"y")
    os.rename("cache.bin", "cache2.bin")
    os.remove("cache2.bin")
    self.info = sorted(os.listdir("."))
    """
    _, describe, _ = run(transfer_folder(tmp_path, reporting("", in_fit)))
    assert describe == {"info": []}


# --- F: the code that runs is the code that was read ------------------------------------------------------


def test_a_link_in_the_submission_folder_is_refused_not_followed(tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("hunter2")
    folder = transfer_folder(tmp_path / "s\nPASSED", LSTSQ_BODY)
    (folder / "data.txt").symlink_to(secret)
    with pytest.raises(SubmissionFailure, match="data.txt is a symbolic link") as info:
        run(folder)
    assert "\n" not in str(info.value) and "hunter2" not in str(info.value)


def test_a_snapshot_runs_the_bytes_it_hashed(tmp_path: Path) -> None:
    import hashlib

    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    snapshot = snapshot_submission(folder)
    tree = hashlib.sha256()  # each file's relative path and content digest, in path order
    for p in sorted(p for p in folder.rglob("*") if p.is_file()):
        tree.update(str(p.relative_to(folder)).encode() + b"\0" + hashlib.sha256(p.read_bytes()).digest())
    assert snapshot.sha256 == tree.hexdigest()
    (folder / "transfer.py").write_text(hostile("", "raise RuntimeError('swapped after validation')"))
    mapped, _, facts = run(snapshot)
    source, target, _ = planted()
    np.testing.assert_allclose(mapped, target[:5], rtol=1e-4, atol=1e-4)
    assert facts["code_sha256"] == snapshot.sha256
    with pytest.raises(SubmissionFailure, match="swapped after validation"):
        run(folder)  # a folder, read afresh: the code now there


def test_a_sandboxed_transfer_runs_the_code_it_was_made_with(tmp_path: Path) -> None:
    """The CLI builds the method (validating and hashing the folder) minutes before the run after
    training maps the words: code swapped in meanwhile never runs, and the recorded sha256 is of
    the code that ran."""
    from types import SimpleNamespace

    import torch

    from vwbench.submissions.transfers import SandboxedTransfer

    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    method = SandboxedTransfer(folder, FAST)
    (folder / "transfer.py").write_text(hostile("", "raise RuntimeError('swapped after validation')"))
    source, target, tokens = planted()
    method.fit(SimpleNamespace(tokens=tokens, matrix=torch.from_numpy(source)), SimpleNamespace(tokens=tokens, matrix=torch.from_numpy(target)))
    mapped = method.map_words(torch.from_numpy(source[:5]), [""] * 5)
    np.testing.assert_allclose(mapped.numpy(), target[:5], rtol=1e-4, atol=1e-4)
    assert method.sandbox["code_sha256"] == method.sha256 == method.describe()["submission"]["sha256"]


# --- second red-team round ------------------------------------------------------------------------


@needs_namespaces
def test_devices_and_ipc_of_the_host_are_out_of_reach(tmp_path: Path) -> None:
    """A read-only mount does not stop writes to a device node (a loop device, /dev/kmsg), and
    SysV shared memory in the host's IPC namespace outlived the run: /dev holds only the harmless
    devices, and the child has its own IPC namespace."""
    in_fit = """
    import ctypes
    info = {"dev": sorted(os.listdir("/dev")), "ipc": os.readlink("/proc/self/ns/ipc")}
    for path in ("/dev/kmsg", "/dev/loop0", "/dev/console"):
        try:
            os.close(os.open(path, os.O_WRONLY))
            info[path] = "opened"
        except OSError as exc:
            info[path] = type(exc).__name__
    with open("/dev/null", "w") as f:
        f.write("still usable")
    info["urandom"] = len(os.urandom(8))
    info["shm"] = ctypes.CDLL(None).shmget(0x76776231, 1 << 16, 0o1000 | 0o600)
    self.info = info
    """
    _, describe, _ = run(transfer_folder(tmp_path, reporting(DISABLE_HOOK, in_fit)))
    info = describe["info"]
    assert info["dev"] == ["fd", "full", "null", "random", "stderr", "stdin", "stdout", "urandom", "zero"], info
    assert all(info[p] != "opened" for p in ("/dev/kmsg", "/dev/loop0", "/dev/console")), info
    assert info["ipc"] != os.readlink("/proc/self/ns/ipc") and info["urandom"] == 8
    assert info["shm"] >= 0  # made in its own namespace, gone with it


@needs_namespaces
def test_the_copy_back_does_not_follow_a_link_the_child_left(tmp_path: Path) -> None:
    """The setup copies the child's outputs out of the tmpfs as root of the namespace: a `.out`
    replaced by a link to a folder of the host must not be read."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "describe.json").write_text('{"stolen": true}')
    (outside / "describe.json").chmod(0)
    in_fit = f"""
    import atexit
    def swap():
        home = os.environ["HOME"]
        os.rename(home + "/.out", home + "/.out-moved")
        os.symlink({str(outside)!r}, home + "/.out")
    atexit.register(swap)
    """
    with pytest.raises(SubmissionFailure, match="before its map\\(\\) output was written") as info:
        run(transfer_folder(tmp_path / "sub", reporting(DISABLE_HOOK, in_fit)))
    assert "stolen" not in str(info.value)  # nothing was copied from the link


def test_a_deeply_nested_submission_folder_is_one_line(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, LSTSQ_BODY)
    deep = folder
    for _ in range(MAX_DEPTH_PROBE):
        deep = deep / "d"
    deep.mkdir(parents=True)
    with pytest.raises(SubmissionFailure, match="folders nested deeper than"):
        snapshot_submission(folder)


MAX_DEPTH_PROBE = 40


@needs_namespaces
def test_the_probe_fails_where_the_child_script_is_out_of_reach(monkeypatch, tmp_path: Path) -> None:
    """vwbench (or its Python) under the temp folder, which the namespace hides: every run would
    fail, so the probe must say no (and why) instead of passing on `sh` alone."""
    monkeypatch.setattr(sandbox, "CHILD", tmp_path / "hidden" / "child.py")
    sandbox.isolation_available.cache_clear()
    try:
        assert not sandbox.isolation_available()
        assert sandbox._probe_failure
    finally:
        sandbox.isolation_available.cache_clear()


def test_validate_prints_a_folder_name_with_a_newline_on_one_line(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from vwbench.cli import app

    folder = transfer_folder(tmp_path / "odd\nPASSED: all checks", LSTSQ_BODY)
    res = CliRunner().invoke(app, ["validate", str(folder), "--no-run"])
    assert res.exit_code == 0, res.output
    first = res.output.splitlines()[0]
    assert first.endswith(": valid transfer-method submission") and "PASSED: all checks" in first


def test_a_python_or_checkout_under_the_temp_folder_is_kept_visible(monkeypatch, tmp_path: Path) -> None:
    """A CI clone under /tmp (its virtual environment and checkout) must stay reachable in the
    namespace, which hides the temp folder: those folders are bound back, outermost only."""
    temp = tmp_path / "temp"
    venv, checkout = temp / "clone" / ".venv", temp / "clone" / "benchmark"
    for folder in (venv, checkout / "vwbench"):
        folder.mkdir(parents=True)
    monkeypatch.setattr(sandbox.sys, "prefix", str(venv))
    monkeypatch.setattr("vwbench.executors.ray_executor.package_root", lambda: checkout)
    monkeypatch.setattr(sandbox, "CHILD", checkout / "vwbench" / "submissions" / "child.py")
    assert sandbox._needed_under(temp) == ["clone/.venv", "clone/benchmark"]
    assert sandbox._needed_under(tmp_path / "elsewhere") == []
