"""Celery signal handlers that keep each Job row true. Each is one call into services."""

from __future__ import annotations

from contextlib import ExitStack
from typing import Any

from celery.signals import (
    task_failure,
    task_postrun,
    task_prerun,
    task_revoked,
    task_success,
    worker_init,
    worker_process_init,
    worker_process_shutdown,
)

from jobs import runtime, services
from jobs.errors import JobError
from jobs.live import notify
from jobs.publish import RUN_TASK
from jobsite import logs


@task_prerun.connect
def open_job_log_context(sender: Any = None, args: Any = None, **_: Any) -> None:
    """Every line of an attempt names its job, from here to ``task_postrun``: Celery's own
    lines about the task and the end written by the handlers below included (the runner
    adds what the claim tells: type, attempt, owner)."""
    if getattr(sender, "name", None) == RUN_TASK and args:
        context = ExitStack()
        context.enter_context(logs.job_context(job_id=args[0]))
        sender.request.jobsite_log_context = context


@task_postrun.connect
def close_job_log_context(sender: Any = None, **_: Any) -> None:
    context = getattr(getattr(sender, "request", None), "jobsite_log_context", None)
    if context is not None:
        context.close()


@task_success.connect
def job_succeeded(sender: Any = None, result: Any = None, **_: Any) -> None:
    request = getattr(sender, "request", None)
    attempt = getattr(request, "jobsite_attempt", None)
    if getattr(sender, "name", None) == RUN_TASK and attempt is not None:
        services.job_complete(request.args[0], task_id=request.id, attempt=attempt, result=result)


@task_failure.connect
def job_failed(
    sender: Any = None,
    task_id: str | None = None,
    exception: BaseException | None = None,
    args: Any = None,
    einfo: Any = None,
    **_: Any,
) -> None:
    """In the pool process for exceptions; in the main worker process when the pool
    process died (WorkerLostError) or hit the hard time limit."""
    if getattr(sender, "name", None) == RUN_TASK and args and exception is not None:
        services.job_attempt_failed(
            args[0], task_id=task_id or "", exc=exception, traceback=str(einfo or "")
        )


@task_revoked.connect
def job_revoked(
    sender: Any = None, request: Any = None, terminated: bool = False, **_: Any
) -> None:
    if getattr(sender, "name", None) == RUN_TASK and terminated and request is not None:
        services.job_attempt_failed(
            request.args[0],
            task_id=request.id,
            exc=JobError("The job's process was terminated", code="terminated"),
        )


@worker_process_init.connect
def limit_pool_process_memory(**_: Any) -> None:
    """A job that allocates past JOBSITE_WORKER_MEMORY_LIMIT_MB gets a MemoryError (the job
    fails ``out_of_memory``) instead of the machine's OOM killer taking the worker."""
    runtime.limit_process_memory()


@worker_process_init.connect
def lower_pool_process_priority(**_: Any) -> None:
    runtime.lower_process_priority()


@worker_init.connect
def lower_worker_priority(**_: Any) -> None:
    runtime.lower_session_priority()


@worker_process_shutdown.connect
def send_queued_live_updates(**_: Any) -> None:
    """A pool process that is replaced (max tasks or memory per child) exits without
    running atexit handlers: wait for Redis to run the live updates it sent (the last
    job's end) before it goes."""
    notify.flush()
