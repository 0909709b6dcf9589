"""The transition table, and that the conditional UPDATE makes races lose cleanly."""

from __future__ import annotations

import itertools

import pytest

from jobs import services
from jobs.models import TERMINAL_STATUSES, Job, JobEvent, JobStatus
from jobs.transitions import ALLOWED, WAITING, can_transition, sources

S = JobStatus


def test_every_status_has_a_row():
    assert set(ALLOWED) == set(S.values)


def test_completed_is_absorbing_and_failed_or_cancelled_only_restart():
    assert ALLOWED[S.COMPLETED] == frozenset()
    assert ALLOWED[S.FAILED] == {S.PENDING}
    assert ALLOWED[S.CANCELLED] == {S.PENDING}


@pytest.mark.parametrize("src,dst", list(itertools.product(S.values, S.values)))
def test_can_transition_matches_table(src, dst):
    assert can_transition(src, dst) == (dst in ALLOWED[src])


def test_nothing_goes_back_to_running_but_a_claim():
    assert sources(S.RUNNING) == {S.PENDING, S.RETRYING}
    assert not any(can_transition(t, S.RUNNING) for t in TERMINAL_STATUSES)


def test_waiting_statuses_are_cancellable():
    assert all(can_transition(s, S.CANCELLED) for s in WAITING)


@pytest.mark.django_db
def test_transition_refuses_disallowed_pairs(user):
    job = Job.objects.create(type="echo", owner=user, status=S.COMPLETED)
    with pytest.raises(ValueError):
        services._transition(job.pk, S.COMPLETED, S.RUNNING, actor="t", reason="t")


@pytest.mark.django_db
def test_second_writer_from_the_same_observed_status_loses(user):
    job = Job.objects.create(type="echo", owner=user, status=S.RUNNING, celery_task_id="a")
    first = services._transition(job.pk, S.RUNNING, S.COMPLETED, actor="t", reason="done")
    second = services._transition(job.pk, S.RUNNING, S.FAILED, actor="t", reason="late")
    assert (first, second) == (True, False)
    job.refresh_from_db()
    assert job.status == S.COMPLETED
    assert list(JobEvent.objects.filter(job=job).values_list("to_status", flat=True)) == [
        S.COMPLETED
    ]


@pytest.mark.django_db
def test_late_completion_of_a_stale_attempt_is_ignored(user):
    job = Job.objects.create(type="echo", owner=user, status=S.RUNNING, celery_task_id="new")
    assert not services.job_complete(job.pk, task_id="old", attempt=1, result=1)
    job.refresh_from_db()
    assert job.status == S.RUNNING
