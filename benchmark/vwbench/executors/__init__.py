"""Where a sweep's jobs run: ``local`` (this process), ``ray`` (a Ray cluster) or ``slurm``
(Slurm through submitit). :func:`make_executor` turns a ``--executor`` name into one.

>>> with make_executor("ray", ExecutorSettings(workers=2, threads=1)) as executor:
...     outcomes = executor.run([Job("one", some_module_function, (1,))], "demo")
"""

from __future__ import annotations

import importlib

from vwbench.errors import UserError
from vwbench.executors.base import Executor, ExecutorSettings, Job, JobOutcome, execute_job

#: executor name -> "module:class" (imported on use: ray and submitit are optional)
EXECUTORS: dict[str, str] = {
    "local": "vwbench.executors.local:LocalExecutor",
    "ray": "vwbench.executors.ray_executor:RayExecutor",
    "slurm": "vwbench.executors.slurm:SlurmExecutor",
}


def executor_class(name: str) -> type[Executor]:
    """The executor class registered as ``name`` (a one-line error for an unknown name)."""
    if name not in EXECUTORS:
        raise UserError(f"unknown executor {name!r}; use one of: {', '.join(EXECUTORS)}")
    module, cls = EXECUTORS[name].split(":")
    return getattr(importlib.import_module(module), cls)


def make_executor(name: str, settings: ExecutorSettings | None = None) -> Executor:
    """A started executor (``ray`` connects or starts its cluster here)."""
    return executor_class(name)(settings or ExecutorSettings())


__all__ = ["EXECUTORS", "Executor", "ExecutorSettings", "Job", "JobOutcome", "execute_job", "executor_class", "make_executor"]
