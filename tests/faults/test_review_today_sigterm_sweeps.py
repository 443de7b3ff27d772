"""``kill PID`` of a ``vwbench sweep --executor slurm --slurm-local`` started in the background
(``cmd &`` in a script, ``nohup``: SIGINT is inherited as ignored) exits 143 with "terminated: ..."
and stops its jobs: a local job is cancelled with SIGINT to its controller, so the controllers are
started taking SIGINT (they inherited "ignore" and ran on as orphans, storing words after vwbench
said nothing was saved)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from tests.faults.conftest import QUIET_ENV
from tests.faults.test_interrupts_review import sweep_args
from tests.processes import processes_in_group


def test_sigterm_of_a_background_slurm_local_sweep_stops_its_jobs(fault_tasks, tmp_path):
    out = tmp_path / "runs"
    args = [*sweep_args(fault_tasks, out, "clip->clip"), "--executor", "slurm", "--slurm-local", "--steps", "5000"]
    env = {**os.environ, **QUIET_ENV}
    env.pop("VWBENCH_FAULT", None)
    # files, not pipes: an orphaned job holding a pipe's write end would make communicate() wait for it
    log = tmp_path / "stderr.txt"
    with open(tmp_path / "stdout.txt", "wb") as stdout_file, open(log, "wb") as stderr_file:
        proc = subprocess.Popen([sys.executable, "-m", "vwbench.cli", *args], stdout=stdout_file, stderr=stderr_file, env=env,
                                start_new_session=True,  # only so that the test can clean up the whole group
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN))  # as `vwbench sweep ... &` from a script
    try:
        end = time.monotonic() + 60
        while time.monotonic() < end and proc.poll() is None and not any("submitit.core._submit" in c for c in processes_in_group(proc.pid)):
            time.sleep(0.05)
        assert proc.poll() is None, log.read_text()
        time.sleep(2)
        proc.send_signal(signal.SIGTERM)  # `kill PID`: vwbench only
        proc.wait(timeout=60)
        stderr = log.read_text()
        assert proc.returncode == 143, stderr
        assert "terminated:" in stderr, stderr
        time.sleep(5)  # a cancelled local job is stopped within about a second
        assert [c for c in processes_in_group(proc.pid) if "submitit" in c] == []
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
