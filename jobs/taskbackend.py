"""Django's Tasks API on Jobsite: a plain ``@task`` function, enqueued the standard way,
becomes a Jobsite job (a Job row before publish, events, admin, API, retries), and
``get_result(id)`` reads that row.

Configured as ``TASKS = {"default": {"BACKEND": "jobs.taskbackend.JobsiteTaskBackend"}}``.
When Django 6's ``django.tasks`` replaces the ``django_tasks`` package, only the imports
here change. ``background(...)`` adds what ``@task`` cannot say: retries, time limit,
parameter schema.
"""

from __future__ import annotations

import asyncio
import inspect
import uuid
from collections.abc import Callable
from typing import Any

from django_tasks import task as django_task
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import (
    Task,
    TaskContext,
    TaskError,
    TaskResult,
    TaskResultStatus,
)
from django_tasks.exceptions import InvalidTaskError, TaskResultDoesNotExist
from django_tasks.utils import normalize_json
from pydantic import BaseModel

from jobs import registry, services
from jobs.api.parsers import check_json
from jobs.models import Job, JobStatus
from jobs.queues import Queue
from jobs.runtime import Progress

_STATUS = {
    JobStatus.PENDING: TaskResultStatus.READY,
    JobStatus.SCHEDULED: TaskResultStatus.READY,
    JobStatus.RETRYING: TaskResultStatus.READY,
    JobStatus.RUNNING: TaskResultStatus.RUNNING,
    JobStatus.COMPLETED: TaskResultStatus.SUCCESSFUL,
    JobStatus.FAILED: TaskResultStatus.FAILED,
    JobStatus.CANCELLED: TaskResultStatus.FAILED,
}


def task_priority(priority: int) -> int:
    """Django's -100..100 onto our 0..9."""
    return round((priority + 100) * 9 / 200)


class JobsiteTaskBackend(BaseTaskBackend):
    supports_defer = True
    supports_async_task = True
    supports_get_result = True
    supports_priority = True

    def validate_task(self, task: Task) -> None:
        super().validate_task(task)
        if task.queue_name not in Queue.values:
            raise InvalidTaskError(
                f"Queue '{task.queue_name}' is not a Jobsite queue ({', '.join(Queue.values)})"
            )

    def enqueue(self, task: Task, args: Any, kwargs: Any) -> TaskResult:
        self.validate_task(task)
        job_type = task_type(task)
        # The API's rule for JSON it stores: storable text, bounded depth (a 400 there).
        check_json({"args": normalize_json(args), "kwargs": normalize_json(kwargs)}, name="params")
        if (schema := _kwargs_schemas.get(task.module_path)) is not None:
            registry.validate_params(schema, normalize_json(kwargs), job_type.name)
        job, _ = services.job_create(
            owner=None,
            job_type=job_type.name,
            params={"args": normalize_json(args), "kwargs": normalize_json(kwargs)},
            actor="system:django-tasks",
            priority=task_priority(task.priority),
            run_at=task.run_after,
            queue=task.queue_name,
            public_only=False,
        )
        return self._result(job, task)

    def get_result(self, result_id: str) -> TaskResult:
        try:
            job = Job.objects.get(pk=uuid.UUID(str(result_id)))
        except (ValueError, Job.DoesNotExist):
            raise TaskResultDoesNotExist(result_id) from None
        job_type = registry.get(job.type)
        task = _task_for(job_type.name)
        if task is None:
            raise TaskResultDoesNotExist(result_id)
        return self._result(job, task)

    def _result(self, job: Job, task: Task) -> TaskResult:
        params = job.params if isinstance(job.params, dict) else {}
        errors = []
        if job.status in (JobStatus.FAILED, JobStatus.CANCELLED) and job.error_code:
            errors.append(
                TaskError(
                    exception_class_path="jobs.errors.JobError",
                    traceback=job.error_traceback or f"{job.error_code}: {job.error_message}",
                )
            )
        result = TaskResult(
            task=task,
            id=str(job.pk),
            status=_STATUS[job.status],
            enqueued_at=job.created_at,
            started_at=job.started_at,
            finished_at=job.completed_at,
            last_attempted_at=job.started_at,
            args=params.get("args", []),
            kwargs=params.get("kwargs", {}),
            backend=self.alias,
            errors=errors,
            worker_ids=[job.worker] * job.attempts,
        )
        if job.status == JobStatus.COMPLETED:
            object.__setattr__(result, "_return_value", job.result)
        return result


def _task_for(module_path: str) -> Task | None:
    from django.utils.module_loading import import_string

    try:
        task = import_string(module_path)
    except ImportError:
        return None
    return task if isinstance(task, Task) else None


def run_task(task: Task, raw: dict[str, Any], progress: Progress) -> Any:
    """Call a Django task function with the args it was enqueued with.

    An ``async def`` runs on an event loop in this (the pool process's main) thread, not
    through ``async_to_sync``'s loop thread: Celery's time-limit signal then interrupts
    the job itself, and progress and cancel work as for a plain function.
    """
    args, kwargs = raw.get("args", []), raw.get("kwargs", {})
    if task.takes_context:
        result = TaskResult(
            task=task,
            id=str(progress.job_id),
            status=TaskResultStatus.RUNNING,
            enqueued_at=None,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=args,
            kwargs=kwargs,
            backend=task.backend,
            errors=[],
            worker_ids=[progress.task_id] * progress.attempt,
        )
        args = [TaskContext(task_result=result), *args]
    if inspect.iscoroutinefunction(task.func):
        return asyncio.run(task.func(*args, **kwargs))
    return task.func(*args, **kwargs)


_kwargs_schemas: dict[str, type[BaseModel]] = {}


def background(
    *,
    max_retries: int = registry.DEFAULT_MAX_RETRIES,
    time_limit: int = registry.DEFAULT_TIME_LIMIT,
    queue: str = Queue.DEFAULT,
    priority: int = 0,
    params: type[BaseModel] | None = None,
) -> Callable[[Callable[..., Any]], Task]:
    """``@task`` plus what Django's Tasks cannot express. ``params`` is a pydantic model
    that validates the keyword arguments at enqueue time."""

    def decorator(func: Callable[..., Any]) -> Task:
        task = django_task(func, queue_name=queue, priority=priority)
        task_type(task, max_retries=max_retries, time_limit=time_limit, queue=queue)
        if params is not None:
            _kwargs_schemas[task.module_path] = params
        return task

    return decorator


def task_type(task: Task, **options: Any) -> registry.JobType:
    """Build (and add to the registry) the job type for a Django ``Task``."""
    existing = registry.find(task.module_path)
    if existing is not None and not options:
        return existing
    job_type = registry.JobType(
        name=task.module_path,
        run=lambda raw, progress: run_task(task, raw, progress),
        queue=options.get("queue", task.queue_name),
        max_retries=options.get("max_retries", registry.DEFAULT_MAX_RETRIES),
        time_limit=options.get("time_limit", registry.DEFAULT_TIME_LIMIT),
        public=False,
        description=(task.func.__doc__ or "").strip(),
    )
    registry.add(job_type)
    return job_type


def _find_task_type(module_path: str) -> registry.JobType | None:
    """A Django Task named by its module path (rows are only written by server code)."""
    task = _task_for(module_path)
    if (registered := registry.find(module_path)) is not None:
        return registered  # its decorator registered it as the module loaded
    return None if task is None else task_type(task)


registry.add_finder(_find_task_type)
