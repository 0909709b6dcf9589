"""Batches end to end: real workers run a batch's jobs, the last one to end closes it,
and its receiver on loopback is told once, signed."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook

from bench.receiver import Receiver
from tests.helpers import wait_for

pytestmark = [pytest.mark.worker]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


def test_a_batch_of_200_with_a_callback_is_told_once_when_its_last_job_ends(
    api, live, webhooks_worker, receiver, settings
):
    settings.JOBSITE_FETCH_ALLOW_HOSTS = "127.0.0.1"  # the API's check at create
    specs = [{"type": "echo", "params": {"payload": n}} for n in range(200)]
    response = api.post(
        "/api/v1/batches/", {"jobs": specs, "callbackUrl": receiver.url}, format="json"
    )
    assert response.status_code == 202, response.content
    batch_id = response.json()["batch_id"]
    assert len(response.json()["job_ids"]) == 200

    def ended() -> dict | None:
        batch = api.get(f"/api/v1/batches/{batch_id}").json()
        return batch if batch["status"] == "completed" else None

    batch = wait_for(ended, 60, "the batch's 200 jobs to end")
    assert batch["counts"]["completed"] == 200 and batch["progress"] == 100.0
    wait_for(lambda: receiver.received, 20, "the batch.completed delivery")
    time.sleep(2.5)  # a sweep or two later: still one message
    [message] = receiver.received
    secret = api.get("/api/v1/webhooks/secret").json()["secret"]
    body = Webhook(secret).verify(message.body, message.headers)
    assert body["type"] == "batch.completed" and body["batchId"] == batch_id
    assert body["data"]["counts"]["completed"] == 200 and body["data"]["total"] == 200
    [delivery] = api.get(f"/api/v1/batches/{batch_id}/deliveries/").json()["results"]
    assert delivery["status"] == "delivered"
    assert delivery["webhook_id"] == message.headers["webhook-id"]
