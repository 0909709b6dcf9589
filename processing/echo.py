"""The diagnostic job type: sleeps in steps, reports progress, fails on demand.

Tests and benchmarks drive the whole lifecycle with it: ``duration_s`` and ``steps`` shape
the progress, ``fail_times`` makes the first attempts fail (a retryable error), and
``payload`` comes back as the result; ``allocate_mb`` holds memory, up to the job's memory
limit (``JOBSITE_JOB_MEMORY_LIMIT_MB``), to exercise that limit.
"""

from __future__ import annotations

import time
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from jobs.api.base import JobError
from jobs.registry import default_memory_limit_mb, register
from jobs.runtime import Progress
from processing.models import EchoWrite

# What one echo attempt may add to its worker: ``allocate_mb`` may ask for no more.
MEMORY_LIMIT_MB = default_memory_limit_mb()


class EchoParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    duration_s: float = Field(default=0.0, ge=0, le=3600, description="Total sleep, seconds.")
    steps: int = Field(default=1, ge=1, le=10_000, description="Progress reports.")
    fail_times: int = Field(default=0, ge=0, le=100, description="Attempts that fail first.")
    payload: Any = Field(default=None, description="Returned as the result.")
    write_payload: bool = Field(
        default=False, description="Also write the payload to the echo ledger (one row per run)."
    )
    allocate_mb: int = Field(
        default=0,
        ge=0,
        le=MEMORY_LIMIT_MB,
        description="Memory to allocate and hold while sleeping (MB, up to the job's memory "
        "limit; near it, the job fails out_of_memory).",
    )


@register(
    "echo",
    params=EchoParams,
    max_retries=3,
    time_limit=3700,
    memory_limit_mb=MEMORY_LIMIT_MB,
    example={"duration_s": 2, "steps": 4, "payload": {"hello": "world"}},
)
def echo(params: EchoParams, progress: Progress) -> Any:
    """Sleep in steps reporting progress, fail the first attempts, return the payload."""
    if progress.attempt <= params.fail_times:
        raise JobError(
            f"echo failing attempt {progress.attempt} of the first {params.fail_times} on request",
            code="echo_failure",
            retryable=True,
        )
    ballast = bytearray(params.allocate_mb * 1024 * 1024)  # MemoryError past the limit
    pause = params.duration_s / params.steps
    for step in range(1, params.steps + 1):
        if pause:
            time.sleep(pause)
        progress(100.0 * step / params.steps, f"step {step} of {params.steps}")
    del ballast
    if params.write_payload:
        # Only while this attempt still owns the job: a reaped attempt must not write.
        progress.flush()
        progress.check()
        EchoWrite.objects.create(
            job_id=progress.job_id, attempt=progress.attempt, payload=params.payload
        )
    return params.payload
