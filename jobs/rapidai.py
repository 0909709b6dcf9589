"""RapidAI's background-job interface, running on Jobsite: code written for
``rapidai.background`` runs here with one import changed.

    from jobs.rapidai import background

    @background(max_retries=3)
    async def process_document(doc_id: str, user_id: str) -> dict: ...

    job_id = await process_document.enqueue(doc_id="d1", user_id="u1")
    result = await process_document.get_result(job_id)  # .status, .result, .error ...

Each function is a Django task (``jobs.taskbackend.background``): a Job row before the
message is published, a real worker, retries with backoff, the admin and the API. RapidAI's
``queue=`` names one of Jobsite's queues here, not a queue object.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async

from jobs import registry, selectors, services
from jobs.errors import Conflict, NotFound, error_fields
from jobs.models import TERMINAL_STATUSES, Job
from jobs.queues import Queue
from jobs.taskbackend import background as task_background


@dataclass(frozen=True)
class JobResult:
    """What ``get_result`` returns: RapidAI's fields, read from the Job row."""

    job_id: str
    status: str
    result: Any
    error: str | None
    attempts: int
    max_retries: int
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None
    duration: float | None

    @property
    def is_done(self) -> bool:
        return self.status in TERMINAL_STATUSES

    @classmethod
    def of(cls, job: Job) -> JobResult:
        failed = error_fields(job.status, job.error_code, job.error_message).get("error")
        return cls(
            job_id=str(job.pk),
            status=job.status,
            result=job.result,
            error=failed["message"] if failed else None,
            attempts=job.attempts,
            max_retries=job.max_retries,
            created_at=job.created_at,
            started_at=job.started_at,
            completed_at=job.completed_at,
            duration=job.duration,
        )


class BackgroundTask:
    """A function to run in the background, with RapidAI's awaitable methods."""

    def __init__(self, func: Callable[..., Any], **options: Any) -> None:
        self.func = func
        self.task = task_background(**options)(func)
        self.__doc__ = func.__doc__

    @property
    def job_type(self) -> str:
        return self.task.module_path

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run the function here and now, as RapidAI's decorated function does."""
        return self.func(*args, **kwargs)

    async def enqueue(self, *args: Any, **kwargs: Any) -> str:
        """Create the job (published once its row is committed); its id."""
        result = await self.task.aenqueue(*args, **kwargs)
        return result.id

    async def get_result(self, job_id: str) -> JobResult | None:
        """The job's state now, or None if this task has no such job."""
        return await sync_to_async(self._get_result)(job_id)

    async def cancel(self, job_id: str) -> bool:
        """Cancel a waiting job now, or ask a running one to stop. False: no such job, or
        it has finished."""
        return await sync_to_async(self._cancel)(job_id)

    def _get_result(self, job_id: str) -> JobResult | None:
        try:
            return JobResult.of(selectors.task_job_get(job_type=self.job_type, job_id=job_id))
        except NotFound:
            return None

    def _cancel(self, job_id: str) -> bool:
        try:
            job = selectors.task_job_get(job_type=self.job_type, job_id=job_id)
            services.job_cancel(job, actor="system:rapidai")
        except (NotFound, Conflict):
            return False
        return True


def background(
    *,
    max_retries: int = registry.DEFAULT_MAX_RETRIES,
    queue: str = Queue.DEFAULT,
    time_limit: int = registry.DEFAULT_TIME_LIMIT,
    priority: int = 0,
) -> Callable[[Callable[..., Any]], BackgroundTask]:
    """RapidAI's ``@background(max_retries=3)``, for ``async def`` and plain functions."""

    def decorator(func: Callable[..., Any]) -> BackgroundTask:
        return BackgroundTask(
            func, max_retries=max_retries, queue=queue, time_limit=time_limit, priority=priority
        )

    return decorator
