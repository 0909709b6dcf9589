"""Publishing a job's message to the broker: only ever a hint to "go and look at job X".

The Job row is the truth; a message may be lost (broker down, crash after commit) or
duplicated (re-publish, Redis redelivery) and the claim in ``jobs.services`` makes both
harmless. Each publication gets a fresh task id, so a revoke of one attempt can never
swallow the message of a later one.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.db import transaction

from jobs.broker import bounded
from jobs.queues import Queue
from jobsite.celery import app

if TYPE_CHECKING:
    from jobs.models import Job

log = logging.getLogger(__name__)

RUN_TASK = "jobs.run"
# Seconds between the soft time limit (raised inside the job) and the hard kill.
HARD_LIMIT_GRACE = 10


def broker_priority(priority: int) -> int:
    """Our 0..9 (9 most urgent) to Celery's Redis priority (0 first)."""
    return 9 - max(0, min(9, priority))


def publish(
    job_id: object,
    *,
    job_type: str,
    queue: str,
    priority: int,
    time_limit: int,
    countdown: float | None = None,
    producer: Any = None,
) -> bool:
    """Send one ``jobs.run`` message; on broker trouble log and return False (the sweeper
    re-publishes from the row)."""
    try:
        app.send_task(
            RUN_TASK,
            producer=producer,
            args=[str(job_id)],
            task_id=str(uuid.uuid4()),
            # What Flower and worker logs show as the task's name: the job's type.
            shadow=f"{RUN_TASK}:{job_type}",
            queue=queue,
            priority=broker_priority(priority),
            soft_time_limit=time_limit,
            time_limit=time_limit + HARD_LIMIT_GRACE,
            countdown=countdown,
        )
    except Exception as exc:  # any broker/transport failure: the row stays, the sweeper retries
        log.warning("Could not publish job %s (%s); the sweeper will re-publish it", job_id, exc)
        return False
    return True


def publish_job(job: Job, countdown: float | None = None, producer: Any = None) -> bool:
    return publish(
        job.pk,
        job_type=job.type,
        queue=job.queue,
        priority=job.priority,
        time_limit=job.time_limit,
        countdown=countdown,
        producer=producer,
    )


def publish_on_commit(job: Job, countdown: float | None = None) -> None:
    """Publish once the transaction that wrote the row commits, never before; in a web
    process, by its background publisher (``publish_in_background``)."""
    send_on_commit(partial(publish_job, job, countdown), what=f"job {job.pk}")


def send_on_commit(send: Callable[..., bool], *, what: str) -> None:
    """Call ``send(producer=...)`` once the transaction commits: in a web process from the
    background publisher, elsewhere at once (a worker's own connection)."""
    if _in_background:
        transaction.on_commit(partial(_background_publisher().submit, send, what))
    else:
        transaction.on_commit(send)


DELIVER_TASK = "jobs.webhooks.deliver"


def publish_delivery(message_id: str, producer: Any = None) -> bool:
    """Send one webhook delivery's message (``jobs.tasks.deliver_webhook``); on broker
    trouble log and return False (the sweeper publishes due deliveries from their rows)."""
    try:
        app.send_task(DELIVER_TASK, producer=producer, args=[message_id], queue=Queue.WEBHOOKS)
    except Exception as exc:  # the row stays due: the sweeper publishes it
        log.warning("Could not publish delivery %s (%s); the sweeper will", message_id, exc)
        return False
    return True


class BackgroundPublisher(threading.Thread):
    """Publishes for a web process, so no request waits on the broker.

    A create answers once its row is committed; the message goes out from this thread, on
    a connection of its own whose socket times out (``JOBSITE_BROKER_TIMEOUT``): a broker
    that stalls (SIGSTOP, a full disk, a network partition) costs this thread a timeout per
    message, never a request its thread. What cannot be sent (the broker is down, or more
    than ``JOBSITE_PUBLISH_BACKLOG`` messages wait) is dropped with a warning: the row is
    the truth and the sweeper publishes pending jobs whose message never arrived
    (``jobs.maintenance.redispatch_lost_pending``).
    """

    def __init__(self) -> None:
        super().__init__(name="jobsite-publisher", daemon=True)
        self.backlog: queue.Queue[Callable[..., bool]] = queue.Queue(
            maxsize=settings.JOBSITE_PUBLISH_BACKLOG
        )
        self.dropped = 0

    def submit(self, send: Callable[..., bool], what: str) -> None:
        try:
            self.backlog.put_nowait(send)
        except queue.Full:
            self.dropped += 1
            log.warning("Publish backlog full: %s is left to the sweeper", what)

    def run(self) -> None:
        while True:
            with app.connection_for_write(transport_options=bounded()) as connection:
                producer = connection.Producer()
                try:
                    while True:
                        send = self.backlog.get()
                        send(producer=producer)
                except Exception as exc:  # the connection itself broke: start a fresh one
                    log.warning("Background publisher: %s; reconnecting", exc)
                    time.sleep(0.5)


_in_background = False
_background: BackgroundPublisher | None = None
_background_pid = 0
_background_guard = threading.Lock()


def publish_in_background() -> None:
    """Make this process publish from a background thread (web processes call this)."""
    global _in_background
    _in_background = True


def _background_publisher() -> BackgroundPublisher:
    """This process's publisher thread, started on first use (after any fork)."""
    global _background, _background_pid
    with _background_guard:
        alive = _background is not None and _background.is_alive()
        if not alive or _background_pid != os.getpid():
            _background = BackgroundPublisher()
            _background_pid = os.getpid()
            _background.start()
        return _background
