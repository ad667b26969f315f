"""A progress bar of a job's tasks, drawn on stderr while the SDK waits for the job."""

from __future__ import annotations

from types import TracebackType

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from custos.core.inert import inert
from custos.core.states import TaskState
from custos.core.wire import JobPublic, TaskKind


class JobProgress:
    """Shows `job <id>: <state> round <n>` and how many of the round's tasks are done. Does nothing
    when disabled, so callers need not branch."""

    def __init__(self, job_id: str, *, enabled: bool) -> None:
        self._job_id = inert(job_id, multiline=False)
        self._progress: Progress | None = None
        if enabled:
            self._progress = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}", markup=False),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._task = self._progress.add_task(f"job {self._job_id}: waiting", total=None)

    def __enter__(self) -> JobProgress:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._progress is not None:
            self._progress.stop()

    def update(self, job: JobPublic) -> None:
        if self._progress is None:
            return
        compute = [t for t in job.tasks if t.kind is TaskKind.COMPUTE and t.round == job.round]
        done = sum(1 for t in compute if t.state is TaskState.DONE)
        self._progress.update(
            self._task,
            description=f"job {self._job_id}: {job.state} round {job.round}",
            total=len(compute) or None,
            completed=done,
        )
