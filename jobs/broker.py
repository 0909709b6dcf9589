"""What the broker itself can tell us: how many messages wait in a queue."""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings

from jobsite.celery import app

log = logging.getLogger(__name__)


def bounded(**options: Any) -> dict[str, Any]:
    """Transport options for a broker connection whose every socket wait is bounded
    (``JOBSITE_BROKER_TIMEOUT``): a stalled broker costs a timeout, not a hang."""
    timeout = settings.JOBSITE_BROKER_TIMEOUT
    return {"socket_timeout": timeout, "socket_connect_timeout": timeout, **options}


def queue_depths(queues: list[str]) -> dict[str, int] | None:
    """Messages waiting in each queue (all priority levels), or None if the broker is down.

    A passive declare is O(1) on both Redis (LLEN of each priority list) and AMQP. After a
    failure the broker is taken for down for a few seconds (``down``), so a storm of stats
    requests does not each wait out a timeout.
    """
    if down():
        return None
    depths: dict[str, int] = {}
    try:
        with app.connection_for_read(transport_options=bounded()) as conn:
            conn.ensure_connection(max_retries=1, timeout=settings.JOBSITE_BROKER_TIMEOUT)
            channel = conn.default_channel
            for name in queues:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except conn.channel_errors:  # a queue nobody published to yet: empty
                    depths[name] = 0
                    channel = conn.default_channel
    except Exception as exc:
        failed(exc)
        return None
    return depths


_down_until = 0.0
DOWN_FOR = 5.0


def down() -> bool:
    """Whether the broker failed us in the last few seconds (callers skip it meanwhile)."""
    return time.monotonic() < _down_until


def failed(exc: BaseException) -> None:
    global _down_until
    log.warning("Broker unavailable (%s); not asked again for %.0f s", exc, DOWN_FOR)
    _down_until = time.monotonic() + DOWN_FOR
