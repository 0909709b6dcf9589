"""Django Tasks used by the integration tests (the worker imports them by path)."""

from __future__ import annotations

import asyncio

from django_tasks import task
from pydantic import BaseModel, ConfigDict

from jobs import progress, runtime
from jobs.rapidai import background as rapidai_background
from jobs.taskbackend import background


@task
def add(a: int, b: int) -> int:
    progress(50, "adding")
    return a + b


@task(takes_context=True)
def whoami(context, tag: str) -> dict:
    return {"tag": tag, "attempt": context.attempt}


class ShoutParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str


@background(max_retries=2, time_limit=30, params=ShoutParams)
def shout(text: str) -> str:
    return text.upper()


@task
async def async_add(a: int, b: int) -> int:
    """An ``async def`` Django task: progress from the event loop, then a result."""
    await asyncio.sleep(0.05)
    progress(50, "adding, asynchronously")
    await asyncio.sleep(0.3)  # long enough for the heartbeat thread to write the 50
    return a + b


@task
async def async_wait(seconds: float) -> str:
    """Reports progress until done; a cancel stops it at its next progress call."""
    steps = max(1, int(seconds / 0.1))
    for step in range(steps):
        await asyncio.sleep(0.1)
        progress(100 * step / steps, f"waiting, step {step + 1} of {steps}")
    return "waited"


# RapidAI's quick start, as written there, with its import pointed at Jobsite.
@rapidai_background(max_retries=3)
async def process_document(doc_id: str, user_id: str):
    # Long-running task
    # Process document, call APIs, etc.
    return {"doc_id": doc_id, "status": "processed"}


@rapidai_background(max_retries=2)
async def flaky_twice(key: str):
    """Fails its first two attempts (RapidAI's retries with backoff), then succeeds."""
    attempt = runtime.current().attempt
    if attempt <= 2:
        raise RuntimeError(f"attempt {attempt} failed on purpose")
    return {"key": key, "attempt": attempt}


@task
def big_result(size: int) -> str:
    """A result larger than JOBSITE_MAX_RESULT_BYTES fails the job, not the readers."""
    return "x" * size
