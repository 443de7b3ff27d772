"""``--executor local``: the jobs one after another in this process (the default)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from vwbench.executors.base import Executor, Job, JobOutcome, execute_job


class LocalExecutor(Executor):
    """Runs each job here, in order; jobs draw their own progress bars."""

    name = "local"
    remote = False

    @property
    def slots(self) -> int:
        return 1

    def _execute(self, jobs: list[Job], on_start: Callable[[int], None]) -> Iterator[tuple[int, JobOutcome]]:
        from vwbench.progress import RichReporter

        for index, job in enumerate(jobs):
            on_start(index)
            yield index, execute_job(job, self.settings.threads, RichReporter())
