"""``python -m vwbench.perf.child JOB.json OUT.json``: one measurement process of ``vwbench bench``."""

from __future__ import annotations

import sys

from vwbench.perf.harness import run_child_main
from vwbench.perf.jobs import JOBS

if __name__ == "__main__":
    sys.exit(run_child_main(sys.argv[1:], JOBS))
