"""Webhooks without a worker: what a callback URL may be, how a message is signed, and
that a delivery refuses an address the policy forbids before any packet is sent."""

from __future__ import annotations

import socket
from datetime import timedelta
from unittest import mock

import pytest
from django.utils import timezone
from standardwebhooks.webhooks import Webhook

from jobs import publish
from jobs.models import Delivery, Job
from jobs.outbound import client
from jobs.webhooks import deliveries, signing

pytestmark = pytest.mark.django_db

REFUSED_AT_CREATE = [
    "http://127.0.0.1/",
    "http://localhost/",
    "http://LOCALHOST./x",
    "http://[::1]/",
    "http://0.0.0.0/",
    "http://10.0.0.1/",
    "http://172.16.0.1/",
    "http://192.168.1.1/",
    "http://169.254.169.254/latest/meta-data/",
    "http://100.64.0.1/",
    "http://[fc00::1]/",
    "http://[fe80::1]/",
    "http://[::ffff:127.0.0.1]/",
    "http://2130706433/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://printer.local/",
    "http://metadata.google.internal/",
    "ftp://example.com/",
    "http://user:pw@example.com/",
    "not a url",
]


def pending_delivery(user, url: str, message_id: str, **fields) -> Delivery:
    """A delivery due now for a completed job of ``user`` (no worker involved)."""
    job = Job.objects.create(type="echo", owner=user, status="completed", callback_url=url)
    now = timezone.now()
    values = {
        "job_completed_at": now,
        "event_type": "job.completed",
        "body": "{}",
        "next_attempt_at": now,
        "give_up_at": now + timedelta(hours=1),
        **fields,
    }
    return Delivery.objects.create(job=job, message_id=message_id, url=url, **values)


@pytest.mark.parametrize("url", REFUSED_AT_CREATE)
def test_a_callback_url_the_policy_refuses_is_a_400_that_says_why(api, url):
    with mock.patch.object(client, "_resolve", side_effect=AssertionError("no lookup")):
        response = api.post("/api/v1/jobs/", {"type": "echo", "callback_url": url}, format="json")
    assert response.status_code == 400, response.content
    [message] = response.json()["error"]["details"]["callback_url"]
    assert "refus" in message.lower() or "url" in message.lower()
    assert not Job.objects.exists()


def test_callback_url_and_callbackUrl_are_one_field(api):
    url = "https://hooks.example.com/jobsite"
    with mock.patch.object(publish, "publish_job"):
        job_id = api.post(
            "/api/v1/jobs/", {"type": "echo", "callbackUrl": url}, format="json"
        ).json()["job_id"]
        assert Job.objects.get(pk=job_id).callback_url == url
        differing = api.post(
            "/api/v1/jobs/",
            {"type": "echo", "callbackUrl": url, "callback_url": url + "2"},
            format="json",
        )
    assert differing.status_code == 400


def test_the_signature_is_the_standard_webhooks_one(user):
    record = signing.secret_for(user.pk)
    assert record.secret.startswith("whsec_") and signing.secret_for(user.pk) == record
    at = timezone.now()
    headers = signing.headers(record, "msg_1", at, '{"a":1}')
    assert headers["webhook-signature"] == Webhook(record.secret).sign("msg_1", at, '{"a":1}')
    assert Webhook(record.secret).verify('{"a":1}', headers) == {"a": 1}


def test_the_previous_secret_signs_only_during_its_grace(user, settings):
    old = signing.secret_for(user.pk).secret
    settings.JOBSITE_WEBHOOK_SECRET_GRACE = 60
    record = signing.rotate(user.pk)
    now = timezone.now()
    assert signing.signing_secrets(record, now) == [record.secret, old]
    assert signing.signing_secrets(record, now + timedelta(seconds=61)) == [record.secret]


@pytest.mark.parametrize("url", ["http://127.0.0.2:9/hook", "http://10.1.2.3/hook"])
def test_a_delivery_refuses_a_forbidden_address_without_sending_a_packet(user, url, settings):
    settings.JOBSITE_FETCH_ALLOW_HOSTS = ""
    delivery = pending_delivery(user, url, "msg_x")
    with mock.patch.object(socket.socket, "connect", side_effect=AssertionError("a packet")):
        assert deliveries.deliver(delivery.message_id) == Delivery.Status.PENDING
    [attempt] = delivery.attempts_made.all()
    assert attempt.status_code is None and "refus" in attempt.error.lower()


def test_a_name_that_resolves_to_a_forbidden_address_is_refused_at_delivery(user, settings):
    settings.JOBSITE_FETCH_ALLOW_HOSTS = ""
    url = "http://hooks.example.test/x"
    delivery = pending_delivery(user, url, "msg_y")
    answer = [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", 80))]
    with (
        mock.patch.object(socket, "getaddrinfo", return_value=answer),
        mock.patch.object(socket.socket, "connect", side_effect=AssertionError("a packet")),
    ):
        deliveries.deliver(delivery.message_id)
    [attempt] = delivery.attempts_made.all()
    assert "169.254.169.254" in attempt.error


def test_delivery_retries_stop_at_the_window(user):
    delivery = pending_delivery(
        user,
        "http://10.0.0.1/",
        "msg_z",
        status=Delivery.Status.SENDING,
        attempts=3,
        give_up_at=timezone.now() + timedelta(seconds=1),
    )
    assert deliveries._record(delivery, 500, "", "", 0.1) == Delivery.Status.FAILED
    delivery.refresh_from_db()
    assert delivery.status == Delivery.Status.FAILED and delivery.finished_at is not None
