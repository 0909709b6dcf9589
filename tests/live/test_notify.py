"""The publishing side on the real broker: updates leave in order, numbered per job, from
the background sender; a Redis that lost its scripts gets them again; flush sends what is
queued (a pool process exits without atexit handlers)."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import redis
from django.conf import settings

from jobs.live import notify


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


def test_notify_returns_at_once_and_flush_sends_what_is_queued(channel, settings):
    _, pubsub = channel
    settings.JOBSITE_LIVE_LINGER = 0.3
    job_id = str(uuid.uuid4())
    started = time.monotonic()
    notify.notify(job_id, status="completed", progress=100)
    assert time.monotonic() - started < 0.05  # the write that reported it does not wait
    notify.flush(timeout=2)
    assert [e["status"] for _, e in received(pubsub, job_id, 1, timeout=0.1)] == ["completed"]


def test_a_value_that_is_not_json_is_dropped_not_raised(channel):
    _, pubsub = channel
    job_id = str(uuid.uuid4())
    notify.notify(job_id, status="running", progress=float("nan"), weird=object())
    notify.notify(job_id, status="running", progress=1)
    notify.flush()
    events = received(pubsub, job_id, 2, timeout=1)
    assert len(events) >= 1 and events[-1][1]["progress"] == 1
