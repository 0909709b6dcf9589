"""Celery's task events for jobs (what Flower lists and counts): sent by default, and not at
all by a worker started with JOBSITE_JOB_TASK_EVENTS=0, whose jobs still run and are recorded
in their own event log."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from jobs.models import Job
from jobs.queues import Queue
from jobs.services import job_create
from jobsite.celery import app
from tests.helpers import wait_for, wait_status

pytestmark = [pytest.mark.worker]


class Listener(threading.Thread):
    """Every Celery event on the broker, as Flower receives them."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.events: list[dict[str, Any]] = []
        self.receiver: Any = None

    def run(self) -> None:
        with app.connection_for_read() as conn:
            self.receiver = app.events.Receiver(conn, handlers={"*": self.events.append})
            self.receiver.capture(limit=None, timeout=None, wakeup=True)

    def for_task(self, task_id: str) -> list[str]:
        return [e["type"] for e in list(self.events) if e.get("uuid") == task_id]

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.should_stop = True
        self.join(5)


def test_job_task_events_follow_the_setting(live, user):
    quiet = live.worker(queues=[Queue.MEDIA], concurrency=1, JOBSITE_JOB_TASK_EVENTS="0")
    listener = Listener()
    listener.start()
    try:
        wait_for(lambda: listener.receiver is not None, 10, "the event receiver")
        time.sleep(1)  # subscribed to the event exchange
        loud, _ = job_create(owner=user, job_type="echo", params={}, actor="test")
        hushed, _ = job_create(
            owner=user, job_type="echo", params={"payload": 1}, actor="test", queue=Queue.MEDIA
        )
        loud, hushed = wait_status(loud.pk, "completed"), wait_status(hushed.pk, "completed")
        assert hushed.result == 1 and hushed.worker.startswith("w")  # the quiet worker ran it

        # The default worker's events arrive (so the listener hears the broker)...
        wait_for(
            lambda: "task-succeeded" in listener.for_task(loud.celery_task_id),
            10,
            "the default worker's task events",
        )
        assert {"task-received", "task-started"} <= set(listener.for_task(loud.celery_task_id))
        time.sleep(0.5)
        # ...and the quiet worker sent none for its job, which its own log records in full.
        assert listener.for_task(hushed.celery_task_id) == []
        transitions = Job.objects.get(pk=hushed.pk).events.values_list("to_status", flat=True)
        assert list(transitions) == ["pending", "running", "completed"]
    finally:
        listener.stop()
        quiet.stop()
