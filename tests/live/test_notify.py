"""The publishing side on the real broker: updates leave in order, numbered per job,
without waiting for Redis; a Redis that lost its scripts or closed the connection gets the
next update anyway; flush waits for Redis to run what was sent."""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest
import redis
from django.conf import settings

from jobs.live import notify
from tests.helpers import wait_for


@pytest.fixture
def channel():
    client = redis.Redis.from_url(settings.JOBSITE_LIVE_URL)
    pubsub = client.pubsub(ignore_subscribe_messages=True)
    pubsub.subscribe(notify.CHANNEL)
    pubsub.get_message(timeout=1)  # the subscribe confirmation
    yield client, pubsub
    pubsub.close()


def received(pubsub, job_id: str, count: int, timeout: float = 5) -> list[tuple[int, dict]]:
    out, deadline = [], time.monotonic() + timeout
    while len(out) < count and time.monotonic() < deadline:
        message = pubsub.get_message(timeout=0.2)
        if message is None:
            continue
        seq, _, body = message["data"].decode().partition(" ")
        event = json.loads(body)
        if event["job_id"] == job_id:
            out.append((int(seq), event))
    return out


def test_a_burst_arrives_in_order_numbered_per_job(channel):
    _, pubsub = channel
    job_id = str(uuid.uuid4())
    for i in range(300):
        notify.notify(job_id, status="running", progress=i / 3)
    notify.flush()
    events = received(pubsub, job_id, 300)
    assert [seq for seq, _ in events] == list(range(1, 301))
    assert [e["progress"] for _, e in events] == [i / 3 for i in range(300)]


def test_a_redis_that_lost_its_scripts_gets_them_again(channel):
    client, pubsub = channel
    job_id = str(uuid.uuid4())
    notify.notify(job_id, status="pending")
    notify.flush()
    client.script_flush()  # what a Redis restart does
    notify.notify(job_id, status="running")
    notify.flush()
    assert [e["status"] for _, e in received(pubsub, job_id, 2)] == ["pending", "running"]


def test_notify_does_not_wait_for_redis_and_flush_waits_for_its_reply(channel):
    client, pubsub = channel
    job_id = str(uuid.uuid4())
    notify.notify(job_id, status="running")
    assert notify.flush()
    client.execute_command("CLIENT", "PAUSE", 400, "ALL")
    started = time.monotonic()
    notify.notify(job_id, status="completed", progress=100)
    assert time.monotonic() - started < 0.1  # the write that reported it does not wait
    assert notify.flush(timeout=3)
    assert time.monotonic() - started >= 0.3  # flush waited until Redis ran it
    statuses = [e["status"] for _, e in received(pubsub, job_id, 2)]
    assert statuses == ["running", "completed"]


def test_the_update_after_redis_closed_the_connection_is_published(channel):
    client, pubsub = channel
    job_id = str(uuid.uuid4())
    notify.notify(job_id, status="pending")
    assert notify.flush()
    name = notify.CLIENT_NAME.format(pid=os.getpid())
    [ours] = [c for c in client.client_list() if c["name"] == name]
    client.client_kill_filter(_id=ours["id"])  # what a Redis restart does to it
    wait_for(lambda: all(c["name"] != name for c in client.client_list()), 5, "the kill")
    notify.notify(job_id, status="running")
    assert notify.flush()
    assert [e["status"] for _, e in received(pubsub, job_id, 2)] == ["pending", "running"]


def test_a_value_json_cannot_hold_is_dropped_not_raised_and_the_next_update_goes_out(channel):
    _, pubsub = channel
    job_id = str(uuid.uuid4())
    loop: list = []
    loop.append(loop)  # not even default=str makes this JSON
    notify.notify(job_id, status="running", weird=loop)  # dropped: watchers resync
    notify.notify(job_id, status="running", progress=1)
    assert notify.flush()
    # Had the first been published it would have come first, numbered 1.
    [(seq, event)] = received(pubsub, job_id, 1)
    assert (seq, event["status"], event["progress"]) == (1, "running", 1)
    assert "weird" not in event


def test_a_value_json_has_no_type_for_goes_out_as_its_text(channel):
    _, pubsub = channel
    job_id = str(uuid.uuid4())

    class Odd:
        def __str__(self) -> str:
            return "odd value"

    notify.notify(job_id, status="running", odd=Odd())
    assert notify.flush()
    [(seq, event)] = received(pubsub, job_id, 1)
    event.pop("timestamp")
    assert (seq, event) == (1, {"job_id": job_id, "status": "running", "odd": "odd value"})


def test_nan_is_dropped_not_sent_as_a_token_browsers_cannot_parse(channel):
    _, pubsub = channel
    job_id = str(uuid.uuid4())
    notify.notify(job_id, status="running", progress=float("nan"))
    notify.notify(job_id, status="running", progress=2)
    assert notify.flush()
    [(seq, event)] = received(pubsub, job_id, 1)
    assert (seq, event["progress"]) == (1, 2)
