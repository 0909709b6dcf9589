"""The worker's writes outlast a database blip (a restart, a failover).

A claim, a completion or a failure that hits a dropped connection is retried on a fresh
connection, with backoff and jitter, for up to ``JOBSITE_DB_RETRY_SECONDS``. Retrying is
safe because every such write is a compare-and-swap: a write that did commit before its
connection dropped simply finds the row already moved and changes nothing.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

import tenacity
from django.conf import settings
from django.db import InterfaceError, OperationalError, connection

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])


def _fresh_connection(state: tenacity.RetryCallState) -> None:
    log.warning(
        "Database unavailable (%s); retrying %s in %.1f s",
        state.outcome.exception() if state.outcome else "?",
        getattr(state.fn, "__name__", "a write"),
        state.next_action.sleep if state.next_action else 0,
    )
    connection.close()


def outlasts_db_blips(func: F) -> F:
    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if connection.in_atomic_block:  # a caller's transaction cannot be replayed here
            return func(*args, **kwargs)
        try:  # the usual case, without building a retry loop per call
            return func(*args, **kwargs)
        except (OperationalError, InterfaceError) as exc:
            log.warning("Database unavailable (%s); retrying %s", exc, func.__name__)
            connection.close()
        retrying = tenacity.Retrying(
            retry=tenacity.retry_if_exception_type((OperationalError, InterfaceError)),
            wait=tenacity.wait_exponential_jitter(initial=0.1, max=5),
            stop=tenacity.stop_after_delay(settings.JOBSITE_DB_RETRY_SECONDS),
            before_sleep=_fresh_connection,
            reraise=True,
        )
        return retrying(func, *args, **kwargs)

    return wrapper  # type: ignore[return-value]
