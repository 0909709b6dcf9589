"""One attempt of one job, as a worker runs it: claim, run the pipeline, hand back."""

from __future__ import annotations

import logging
import os
from typing import Any

from jobs import registry, runtime, services
from jobs.errors import JobError, UnknownJobType
from jobsite import logs

log = logging.getLogger(__name__)


def run_attempt(request: Any, job_id: str) -> Any:
    """Run the job if this message may (the claim), else return None quietly.

    Completion and failure are written by the Celery signal handlers (``jobs.signals``),
    which also see the failures that never reach this frame: a killed process, a hard
    time limit. ``request.jobsite_attempt`` tells them an attempt really ran.
    """
    worker = f"{request.hostname or 'worker'}:{os.getpid()}"
    job = services.job_claim(job_id, task_id=request.id, worker=worker)
    if job is None:
        return None
    logs.bind_job(job)  # the rest of the attempt's lines, to its task_postrun (jobs.signals)
    request.jobsite_attempt = job.attempts
    try:
        job_type = registry.get(job.type)
    except UnknownJobType:
        raise JobError(
            f"Job type '{job.type}' is not known to this worker", code="unknown_job_type"
        ) from None
    reporter = runtime.Progress(
        services.AttemptWrites(job.pk, request.id, job.attempts),
        input_path=job.input_file.path if job.input_file else None,
        owner_id=job.owner_id,
    )
    with runtime.activate(reporter), runtime.memory_limit(job_type.memory_limit_mb):
        try:
            return job_type.run(job.params, reporter)
        except MemoryError:
            # Celery takes a MemoryError reaching it for the worker's own and shuts the
            # worker down; it is this job's, so it fails this job only.
            raise JobError("The job ran out of memory", code="out_of_memory") from None
