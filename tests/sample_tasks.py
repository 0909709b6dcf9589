"""Django Tasks used by the integration tests (the worker imports them by path)."""

from __future__ import annotations

from django_tasks import task
from pydantic import BaseModel, ConfigDict

from jobs import progress
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
