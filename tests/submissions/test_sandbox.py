"""Hostile transfer methods: each is refused or contained, with a message saying what happened,
and the calling process carries on unharmed."""

from __future__ import annotations

import json

import os
import time
from pathlib import Path

import numpy as np
import pytest

from vwbench.submissions.sandbox import Limits, SubmissionFailure, network_namespace_available, run_transfer_submission

from .helpers import LSTSQ_BODY, hostile, planted, transfer_folder

FAST = Limits(time_limit_s=20, memory_mb=1024, output_mb=4)


def run(folder: Path, limits: Limits = FAST, init_words=None):
    source, target, tokens = planted()
    return run_transfer_submission(folder, "transfer.py", "Transfer", source, target, tokens, source[:5], init_words or [""] * 5, limits)


def test_good_submission_maps_exactly(tmp_path: Path) -> None:
    mapped, describe, facts = run(transfer_folder(tmp_path, LSTSQ_BODY))
    source, target, _ = planted()
    np.testing.assert_allclose(mapped, target[:5], rtol=1e-4, atol=1e-4)
    assert facts["network_isolation"] in ("unshare -rnmipf", "audit hook only") and describe == {}


def test_sleeping_forever_is_stopped_at_the_time_limit(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, hostile("import time", "time.sleep(10**6)"))
    start = time.monotonic()
    with pytest.raises(SubmissionFailure, match="longer than the 2 s time limit"):
        run(folder, Limits(time_limit_s=2, memory_mb=1024))
    assert time.monotonic() - start < 10


def test_unbounded_allocation_hits_the_memory_limit(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, hostile("", "hoard = []\nwhile True:\n    hoard.append(bytearray(50 * 2**20))"))
    with pytest.raises(SubmissionFailure, match="MemoryError.*memory limit is 512 MB"):
        run(folder, Limits(time_limit_s=30, memory_mb=512))


def test_sockets_are_refused(tmp_path: Path) -> None:
    folder = transfer_folder(tmp_path, hostile("import socket", "socket.create_connection(('93.184.216.34', 80), timeout=3)"))
    with pytest.raises(SubmissionFailure, match=r"raised in fit\(\): PermissionError: .*socket"):
        run(folder)


@pytest.mark.skipif(not network_namespace_available(), reason="user namespaces are not permitted here")
def test_the_child_has_no_network_interfaces_but_loopback(tmp_path: Path) -> None:
    # below the audit hook: the kernel's view of the child's network namespace
    body = """
    import numpy as np

    class Transfer:
        def fit(self, source, target, tokens):
            with open('/proc/self/net/dev') as f:
                self.ifaces = sorted(line.split(':')[0].strip() for line in f.readlines()[2:])

        def map(self, vectors):
            return vectors[:, :6]

        def describe(self):
            return {'ifaces': self.ifaces}
    """
    _, describe, facts = run(transfer_folder(tmp_path, body))
    assert facts["network_isolation"] == "unshare -rnmipf" and describe["ifaces"] == ["lo"]


def test_reading_secrets_and_the_environment_is_refused(tmp_path: Path, monkeypatch) -> None:
    secret = tmp_path / "dot-ssh" / "id_ed25519"
    secret.parent.mkdir()
    secret.write_text("PRIVATE KEY")
    for target in (str(secret), os.path.expanduser("~/.ssh/id_rsa"), "/etc/passwd"):
        folder = transfer_folder(tmp_path / f"t{abs(hash(target))}", hostile("", f"open({target!r}).read()"))
        with pytest.raises(SubmissionFailure, match="PermissionError: vwbench sandbox: opening .* is not allowed"):
            run(folder)
    monkeypatch.setenv("VWBENCH_TEST_SECRET", "hunter2")
    body = """
    import os
    class Transfer:
        def fit(self, source, target, tokens):
            self.env = dict(os.environ)
        def map(self, vectors):
            return vectors[:, :6]
        def describe(self):
            return {'env': self.env, 'home': os.path.expanduser('~'), 'cwd': os.getcwd()}
    """
    _, describe, _ = run(transfer_folder(tmp_path / "env", body))
    assert "VWBENCH_TEST_SECRET" not in describe["env"] and "hunter2" not in str(describe)
    assert describe["home"].startswith(describe["cwd"].rsplit("/run", 1)[0]) and "vwbench-sub-" in describe["home"]
    assert not Path(describe["home"]).exists()  # the working directory is gone afterwards


def test_processes_and_writes_outside_the_workdir_are_refused(tmp_path: Path) -> None:
    for code, what in (("import subprocess; subprocess.run(['true'])", "subprocess"), ("import os; os.system('true')", "os.system"),
                       (f"open({str(tmp_path / 'out.txt')!r}, 'w').write('x')", "opening")):
        folder = transfer_folder(tmp_path / what.replace(".", "_"), hostile("", code))
        with pytest.raises(SubmissionFailure, match=what):
            run(folder)
    assert not (tmp_path / "out.txt").exists()


def test_printing_megabytes_is_contained(tmp_path: Path) -> None:
    chatty = transfer_folder(tmp_path / "a", hostile("", "for _ in range(3):\n    print('x' * 2**20)"))
    mapped, _, _ = run(chatty)  # 3 MB of output under a 4 MB limit: fine, and not echoed
    assert mapped.shape == (5, 6)
    flood = transfer_folder(tmp_path / "b", hostile("", "while True:\n    print('x' * 2**20, flush=True)"))
    with pytest.raises(SubmissionFailure, match="wrote more than the 4 MB output limit"):
        run(flood)


@pytest.mark.parametrize(
    "map_body, message",
    [
        ("return vectors[:, :3]", r"returned 3-dim|returned shape"),
        ("return vectors[:2] @ self.T", r"returned shape \(2, 6\)"),
        ("return np.full((len(vectors), 6), np.nan)", "NaN or infinite"),
        ("return 'garbage'", r"raised in map\(\): TypeError: map\(\) returned values of dtype <U7; return floating-point vectors"),
        ("import os; os._exit(7)", "exited with code 7"),
        ("import os; os._exit(0)", r"ended without an error but before its map\(\) output was written"),
        ("import sys; sys.exit(0)", r"ended without an error but before its map\(\) output was written"),
        ("return None", r"map\(\) returned None"),
        ("import ctypes; ctypes.string_at(0)", "segmentation fault"),
        ("raise RuntimeError('boom')", r"raised in map\(\): RuntimeError: boom"),
    ],
)
def test_garbage_and_crashes_are_that_submissions_failure(tmp_path: Path, map_body: str, message: str) -> None:
    body = LSTSQ_BODY.replace("return vectors @ self.T", map_body)
    folder = transfer_folder(tmp_path, body)
    if "3-dim" in message:
        mapped, _, _ = run(folder)  # the sandbox returns it; the transfer wrapper checks the target width
        assert mapped.shape == (5, 3)
        from types import SimpleNamespace

        import torch

        from vwbench.submissions.transfers import SandboxedTransfer

        source, target, tokens = planted()
        method = SandboxedTransfer(folder, FAST).fit(SimpleNamespace(tokens=tokens, matrix=torch.from_numpy(source)),
                                                     SimpleNamespace(tokens=tokens, matrix=torch.from_numpy(target)))
        with pytest.raises(SubmissionFailure, match="map\\(\\) returned 3-dim vectors, the target model's are 6-dim"):
            method.map_words(torch.from_numpy(source[:5]), [""] * 5)
        return
    with pytest.raises(SubmissionFailure, match=message):
        run(folder)
    # the calling process is unharmed: a good submission still runs
    mapped, _, _ = run(transfer_folder(tmp_path / "after", LSTSQ_BODY))
    assert mapped.shape == (5, 6)


def test_a_describe_file_nested_too_deep_is_left_out_not_a_traceback(tmp_path: Path) -> None:
    from vwbench.submissions.sandbox import _read_describe

    path = tmp_path / "describe.json"
    path.write_text("[" * 30_000 + "]" * 30_000)  # under the 64 kB cap
    assert _read_describe(path) == {}
    path.write_text(json.dumps({"name": "m", "rank": 3}))
    assert _read_describe(path) == {"name": "m", "rank": 3}
