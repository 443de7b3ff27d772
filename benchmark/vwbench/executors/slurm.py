"""``--executor slurm``: jobs as Slurm jobs through submitit (one job array per phase).

``--slurm-local`` uses submitit's local executor instead (each job a subprocess on this machine),
to try a sweep's Slurm path without Slurm; the ``debug`` cluster (Python API) runs jobs in this
process. Job logs go to ``OUT/.executor/slurm/``. Ctrl-C cancels the jobs still queued or running.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vwbench.errors import UserError
from vwbench.executors.base import Executor, ExecutorSettings, Job, JobOutcome, execute_job

CLUSTERS = ("slurm", "local", "debug")
_DEFAULT_SLURM_SLOTS = 4


def _import_submitit():
    try:
        import submitit
    except ImportError as exc:
        raise UserError("--executor slurm needs the submitit package: pip install 'vwbench[scale]' (or pip install 'submitit>=1.5')") from exc
    return submitit


@contextmanager
def _local_controllers(log: Path | None) -> Iterator[None]:
    """How submitit's local mode starts its per-job controller processes (inside this block;
    ``log`` None: another mode, nothing changes):

    * their stderr is ``log`` (file descriptor 2 points there meanwhile): a controller stopped by
      Ctrl-C or by a cancel prints a KeyboardInterrupt traceback, which belongs in the job logs,
      not under vwbench's one line;
    * they take SIGINT even when vwbench ignores it (started in the background: ``cmd &`` from a
      script, ``nohup``): a local job is cancelled with SIGINT to its controller, which then kills
      its job, and a controller that inherited "ignore" ran on as an orphan after a SIGTERM of
      vwbench. (SIGTERM would not do: submitit's jobs ignore it, as Slurm sends it before a kill.)"""
    if log is None:
        yield
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stderr.flush()
    saved = os.dup(2)
    ignoring = signal.getsignal(signal.SIGINT) is signal.SIG_IGN and threading.current_thread() is threading.main_thread()
    try:
        with log.open("ab") as f:
            os.dup2(f.fileno(), 2)
        if ignoring:
            signal.signal(signal.SIGINT, signal.default_int_handler)  # a child's exec resets it to the default
        yield
    finally:
        if ignoring:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        os.dup2(saved, 2)
        os.close(saved)


class SlurmExecutor(Executor):
    """Submits jobs with submitit's AutoExecutor and polls them."""

    name = "slurm"

    def __init__(self, settings: ExecutorSettings) -> None:
        super().__init__(settings)
        submitit = self._submitit = _import_submitit()
        cluster = self.cluster = settings.slurm_cluster
        if cluster not in CLUSTERS:
            raise UserError(f"unknown submitit cluster {cluster!r}; use one of: {', '.join(CLUSTERS)}")
        if cluster == "slurm" and shutil.which("sbatch") is None:
            raise UserError("--executor slurm found no sbatch on PATH: run the sweep on a Slurm login node, or try it here with --slurm-local")
        self._pending: dict = {}
        folder = self._job_folders = settings.log_dir / "slurm" / "%j"
        try:
            self._executor = submitit.AutoExecutor(folder=folder, cluster=cluster)
        except RuntimeError as exc:  # submitit's own check for srun
            raise UserError(f"--executor slurm cannot use Slurm here ({exc}); run it on a login node, or use --slurm-local") from exc
        cpus = settings.slurm_cpus or settings.threads or 1
        params: dict = {"timeout_min": settings.slurm_time_min, "gpus_per_node": settings.slurm_gpus, "cpus_per_task": cpus, "name": "vwbench-sweep"}
        if cluster == "slurm":
            from vwbench.executors.ray_executor import package_root

            params["slurm_setup"] = [f"export PYTHONPATH={shlex.quote(str(package_root()))}${{PYTHONPATH:+:$PYTHONPATH}}"]
            params["slurm_array_parallelism"] = self.slots
            if settings.slurm_partition:
                params["slurm_partition"] = settings.slurm_partition
        self._executor.update_parameters(**params)
        self._threads = settings.threads or cpus
        self._controller_log = settings.log_dir / "slurm" / "local-controllers.log" if cluster == "local" else None

    @property
    def slots(self) -> int:
        if self.settings.workers:
            return self.settings.workers
        return _DEFAULT_SLURM_SLOTS if self.cluster == "slurm" else 1

    def describe(self) -> str:
        mode = "" if self.cluster == "slurm" else f" (submitit {self.cluster} mode)"
        return f"slurm executor{mode}, {self.slots} job(s) at once"

    def _execute(self, jobs: list[Job], on_start: Callable[[int], None]) -> Iterator[tuple[int, JobOutcome]]:
        # Slurm gets the whole phase as one array (the array's parallelism caps it); the local
        # modes keep at most `slots` subprocesses alive
        window = len(jobs) if self.cluster == "slurm" else self.slots
        poll = 5.0 if self.cluster == "slurm" else 0.2
        queue = list(range(len(jobs)))
        self._pending = {}
        while queue or self._pending:
            take, queue = queue[: max(0, window - len(self._pending))], queue[max(0, window - len(self._pending)) :]
            if take:
                with _local_controllers(self._controller_log), self._executor.batch():
                    handles = [self._executor.submit(execute_job, jobs[i], self._threads) for i in take]
                self._pending.update(zip(take, handles))
            finished = [i for i, h in self._pending.items() if h.done(force_check=self.cluster != "slurm")]
            if not finished:
                time.sleep(poll)
                continue
            for index in finished:
                yield index, self._result(jobs[index], self._pending.pop(index))

    def _result(self, job: Job, handle) -> JobOutcome:
        utils = self._submitit.core.utils
        try:
            return handle.result()
        except utils.FailedJobError as exc:  # a subclass of UncompletedJobError: the job ran and raised
            raise UserError(f"{job.label}: Slurm job {handle.job_id} failed: {_raised(str(exc))} (its log holds the whole trace)") from exc
        except utils.UncompletedJobError as exc:
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise UserError(f"{job.label}: Slurm job {handle.job_id} did not finish ({first}); run the sweep again to resume "
                            "(what finished is stored; raise --slurm-time if it ran out of time)") from exc

    def close(self) -> None:
        # submitit's local controllers also make the job-folder pattern itself, empty, beside the
        # jobs' own folders: a literal "%j" folder in the user's logs
        try:
            self._job_folders.rmdir()
        except OSError:  # absent, or (some other submitit) holding files: leave it
            pass

    def cancel_outstanding(self) -> None:
        for handle in self._pending.values():
            try:
                handle.cancel(check=False)  # local mode: SIGINT to the job's controller (see _local_controllers)
            except Exception:  # noqa: BLE001 - a job that just ended cannot be cancelled
                pass
        self._pending = {}


def _raised(message: str) -> str:
    """The exception line of a submitit ``FailedJobError`` message: its trace sits between two
    rules of dashes and ends with the exception; the log paths follow the second rule."""
    lines = [line.strip() for line in message.splitlines()]
    rules = [i for i, line in enumerate(lines) if line and set(line) == {"-"}]
    trace = lines[rules[0] + 1 : rules[1]] if len(rules) >= 2 else lines
    last = next((line for line in reversed(trace) if line), "")
    return (last or "the job raised (no trace recorded)")[:300]
