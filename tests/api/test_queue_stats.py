"""Queue stats after a known mix of jobs: owners see their own counts, staff see all."""

from __future__ import annotations

from collections import Counter
from datetime import timedelta

import pytest
from django.utils import timezone

from jobs.models import Job, JobStatus
from tests.helpers import make_client

pytestmark = pytest.mark.django_db

MIX = {
    "pending": 3,
    "scheduled": 1,
    "running": 2,
    "retrying": 1,
    "completed": 5,
    "failed": 2,
    "cancelled": 1,
}


def test_counts_for_owner_and_staff(user, other_user, django_user_model):
    old = timezone.now() - timedelta(minutes=10)
    for status, n in MIX.items():
        for _ in range(n):
            Job.objects.create(type="echo", owner=user, status=status, created_at=old)
    Job.objects.create(type="echo", owner=other_user, status="failed")
    Job.objects.create(type="echo", owner=other_user, status="pending", queue="media")

    stats = make_client(user).get("/api/v1/jobs/queue/stats").json()
    for status, n in MIX.items():
        assert stats[f"{status}_jobs"] == n, status
    assert stats["total_jobs"] == sum(MIX.values())
    assert stats["queues"]["default"]["oldest_pending_age_s"] >= 600
    assert stats["queues"]["media"]["oldest_pending_age_s"] is None  # not theirs

    staff = django_user_model.objects.create_user("ops", is_staff=True)
    everything = make_client(staff).get("/api/v1/jobs/queue/stats").json()
    expected = Counter(MIX) + Counter({"failed": 1, "pending": 1})
    for status in JobStatus.values:
        assert everything[f"{status}_jobs"] == expected[status], status
    assert everything["total_jobs"] == sum(MIX.values()) + 2
    assert everything["queues"]["media"]["oldest_pending_age_s"] is not None
    for field in (
        "queue_type",
        "cache_size",
        "cpu_usage_percent",
        "memory_usage_mb",
        "active_workers",
        "queue_health",
    ):
        assert field in everything
    assert set(everything["queue_health"]) >= {
        "status",
        "resource_utilization",
        "limit_enforcement",
    }


def test_depth_of_each_broker_queue(api):
    from jobs.broker import queue_depths
    from jobsite.celery import app

    before = queue_depths(["webhooks"])["webhooks"]
    for _ in range(3):  # nobody consumes "webhooks" in this test run
        app.send_task("jobs.run", args=["00000000-0000-0000-0000-000000000000"], queue="webhooks")
    stats = api.get("/api/v1/jobs/queue/stats").json()
    assert stats["queues"]["webhooks"]["depth"] == before + 3
    with app.connection_for_write() as conn:
        conn.default_channel.queue_purge("webhooks")
