"""Webhooks end to end: real workers (the job's, and the webhooks queue's), beat's
sweeper, and a receiver on loopback that verifies what it is sent with the Standard
Webhooks reference library."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from bench.receiver import Receiver
from jobs.models import Delivery, JobStatus
from tests.helpers import wait_for, wait_status

pytestmark = [pytest.mark.worker]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def hooks(live, webhooks_worker, settings):
    settings.JOBSITE_FETCH_ALLOW_HOSTS = "127.0.0.1"  # the API's check at create
    return webhooks_worker


def create(api, receiver: Receiver, *, max_retries: int = 3, **params) -> str:
    response = api.post(
        "/api/v1/jobs/",
        {"type": "echo", "params": params, "callbackUrl": receiver.url, "max_retries": max_retries},
        format="json",
    )
    assert response.status_code == 202, response.content
    return response.json()["job_id"]


def deliveries(api, job_id: str) -> list[dict]:
    response = api.get(f"/api/v1/jobs/{job_id}/deliveries/")
    assert response.status_code == 200, response.content
    return response.json()["results"]


def settled(api, job_id: str, status: str) -> list[dict]:
    def done() -> list[dict] | None:
        found = deliveries(api, job_id)
        return found if found and found[0]["status"] == status else None

    return wait_for(done, 30, f"the delivery of {job_id} to be {status}")


def test_an_ended_job_is_told_once_signed_so_the_receiver_can_verify_it(api, hooks, receiver):
    job_id = create(api, receiver, payload="hi")
    wait_status(job_id, JobStatus.COMPLETED)
    [delivery] = settled(api, job_id, "delivered")
    [message] = receiver.received
    secret = api.get("/api/v1/webhooks/secret").json()["secret"]
    body = Webhook(secret).verify(message.body, message.headers)
    assert body["type"] == "job.completed" and body["jobId"] == job_id
    assert body["status"] == "completed" and body["data"]["result"] == body["result"]
    assert body["data"]["job_id"] == job_id and body["error"] is None
    assert message.headers["webhook-id"] == delivery["webhook_id"]
    assert [a["status_code"] for a in delivery["attempts_made"]] == [200]
    time.sleep(2.5)  # a sweep later: still one message
    assert len(receiver.received) == 1
    other_secret = "whsec_" + "A" * 43 + "="
    with pytest.raises(WebhookVerificationError):
        Webhook(other_secret).verify(message.body, message.headers)


def test_a_failed_job_says_why(api, hooks, receiver):
    job_id = create(api, receiver, fail_times=9, max_retries=0)
    wait_status(job_id, JobStatus.FAILED)
    settled(api, job_id, "delivered")
    body = json.loads(receiver.received[0].body)
    assert body["type"] == "job.failed" and body["error"]["code"]


def test_a_receiver_that_fails_twice_sees_one_webhook_id_three_times(api, hooks, receiver):
    receiver.answers = [500, 503]
    job_id = create(api, receiver)
    [delivery] = settled(api, job_id, "delivered")
    ids = [message.headers["webhook-id"] for message in receiver.received]
    assert ids == [delivery["webhook_id"]] * 3
    assert [m.body for m in receiver.received] == [receiver.received[0].body] * 3
    codes = [a["status_code"] for a in delivery["attempts_made"]]
    assert codes == [500, 503, 200]
    assert delivery["attempts_made"][0]["response_excerpt"] == "answered 500"
    assert delivery["attempts_made"][0]["next_attempt_at"] is not None


def test_a_410_disables_the_callback_without_retrying(api, hooks, receiver):
    receiver.default = 410
    job_id = create(api, receiver)
    [delivery] = settled(api, job_id, "disabled")
    time.sleep(2.5)
    assert len(receiver.received) == 1 and len(delivery["attempts_made"]) == 1


def test_a_receiver_that_never_answers_fails_its_delivery_and_delays_no_job(api, hooks, receiver):
    receiver.delay = 5  # past the webhooks worker's 1 s timeout, every time
    slow = create(api, receiver)
    started = time.monotonic()
    others = [create(api, receiver) for _ in range(6)]
    for job_id in [slow, *others]:
        wait_status(job_id, JobStatus.COMPLETED, timeout=20)
    assert time.monotonic() - started < 15  # the jobs never waited on their receiver
    [delivery] = wait_for(
        lambda: [d for d in deliveries(api, slow) if d["status"] == "failed"],
        40,
        "the slow receiver's delivery to fail",
    )
    assert len(delivery["attempts_made"]) >= 2
    assert all(a["status_code"] is None for a in delivery["attempts_made"])
    assert all("took longer than 1 seconds" in a["error"] for a in delivery["attempts_made"])


def test_after_a_rotation_deliveries_carry_both_signatures_until_the_grace_ends(
    api, hooks, receiver
):
    old = api.get("/api/v1/webhooks/secret").json()["secret"]
    rotated = api.post("/api/v1/webhooks/secret/rotate").json()
    new = rotated["secret"]
    assert new != old and new.startswith("whsec_") and rotated["previous_valid_until"]
    job_id = create(api, receiver)
    settled(api, job_id, "delivered")
    [message] = receiver.received
    assert len(message.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):  # a receiver on either secret accepts it
        assert Webhook(secret).verify(message.body, message.headers)["jobId"] == job_id


def test_a_cancelled_job_is_told_too(api, hooks, receiver):
    response = api.post(
        "/api/v1/jobs/",
        {
            "type": "echo",
            "params": {},
            "callback_url": receiver.url,
            "run_at": "2099-01-01T00:00:00Z",
        },
        format="json",
    )
    job_id = response.json()["job_id"]
    assert api.post(f"/api/v1/jobs/{job_id}/cancel/").status_code == 200
    settled(api, job_id, "delivered")
    assert json.loads(receiver.received[0].body)["type"] == "job.cancelled"
    assert Delivery.objects.filter(job_id=job_id).count() == 1
