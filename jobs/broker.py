"""What the broker itself can tell us: how many messages wait in a queue."""

from __future__ import annotations

import logging

from jobsite.celery import app

log = logging.getLogger(__name__)


def queue_depths(queues: list[str]) -> dict[str, int] | None:
    """Messages waiting in each queue (all priority levels), or None if the broker is down.

    A passive declare is O(1) on both Redis (LLEN of each priority list) and AMQP.
    """
    depths: dict[str, int] = {}
    try:
        with app.connection_for_read() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
            channel = conn.default_channel
            for name in queues:
                try:
                    depths[name] = channel.queue_declare(queue=name, passive=True).message_count
                except Exception:  # a queue nobody published to yet does not exist: empty
                    depths[name] = 0
                    channel = conn.default_channel
    except Exception as exc:
        log.warning("Broker unavailable for queue depth: %s", exc)
        return None
    return depths
