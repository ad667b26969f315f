"""While a task runs, ask the orchestrator every few seconds whether it still wants the result; when it
says stop (the job was cancelled, or failed at another site), end the job's sandboxes at once.

The agent computes a task in its own thread and makes no call meanwhile, so without this a cancelled
job's sandbox would run on to its wall-clock limit. The watch runs in a second thread, only during a
task, and every failure of it (the orchestrator away) just waits for the next check.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from types import TracebackType

from custos.core.errors import CustosError
from custos.core.wire import TaskAssignment, TaskStanding

log = logging.getLogger("custos.gateway")

# Ask for a task's standing; end a job's sandboxes (returns how many were running).
StandingCheck = Callable[[str], TaskStanding]
StopJob = Callable[[str], int]


class TaskWatch:
    """A context manager: checks `task` every `interval_s` seconds while the block runs."""

    def __init__(
        self, task: TaskAssignment, check: StandingCheck, stop_job: StopJob, interval_s: float
    ) -> None:
        self._task = task
        self._check = check
        self._stop_job = stop_job
        self._interval_s = interval_s
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"watch-{task.task_id}", daemon=True)
        self.stopped_for: str | None = None

    def __enter__(self) -> TaskWatch:
        if self._task.job_id is not None:
            self._thread.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self._interval_s + 15)

    def _watch(self) -> None:
        task, job_id = self._task, self._task.job_id
        assert job_id is not None
        while not self._done.wait(self._interval_s):
            try:
                standing = self._check(task.task_id)
            except CustosError as exc:
                log.debug("task %s: its standing could not be checked: %s", task.task_id, exc)
                continue
            if standing.stop is None:
                continue
            self.stopped_for = standing.stop
            ended = self._stop_job(job_id)
            log.info(
                "task %s: %s; ended %d sandbox(es) of job %s", task.task_id, standing.stop, ended, job_id
            )
            return
