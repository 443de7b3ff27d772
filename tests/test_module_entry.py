"""``python -m vwbench`` is the ``vwbench`` command (errors, exit codes and output alike)."""

from __future__ import annotations

import json
import subprocess
import sys


def test_python_dash_m_vwbench_runs_the_command_line() -> None:
    listed = subprocess.run([sys.executable, "-m", "vwbench", "ls", "--json", "--tier", "mini"], capture_output=True, text=True, timeout=120)
    assert listed.returncode == 0, listed.stderr
    assert len(json.loads(listed.stdout)) == 36  # 4 synthetic datasets x 9 pairs
    bad = subprocess.run([sys.executable, "-m", "vwbench", "ls", "--tier", "nope"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr == "error: --tier 'nope': no task has it (known: mini, paper)\n"
