"""Fixtures: users with API keys, an API client, and real Celery worker and beat processes
running against the same broker and test database as the test itself."""

from __future__ import annotations

import os
import re
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from django.conf import settings
from rest_framework.test import APIClient

from jobs.queues import Queue
from tests.browser import launch
from tests.corpus import corpus_dir, corpus_problem
from tests.helpers import CeleryProcess, Processes, database_url, make_client


@pytest.fixture(scope="session", autouse=True)
def _flush_retries_deadlocks() -> Iterator[None]:
    """A transactional test's teardown TRUNCATEs every table while the session's workers
    and beat may still be writing (the sweeper): PostgreSQL can then abort the TRUNCATE as
    one side of a deadlock (seen once in CI). The other side goes on; a short wait and the
    same flush again is all it takes."""
    from django.core.management.base import CommandError
    from django.test import testcases

    original = testcases.TransactionTestCase._fixture_teardown

    def teardown(self: Any) -> None:
        for attempt in range(5):
            try:
                return original(self)
            except CommandError as exc:
                if attempt == 4 or "deadlock detected" not in str(exc.__cause__):
                    raise
                time.sleep(0.2 * (attempt + 1))

    testcases.TransactionTestCase._fixture_teardown = teardown
    yield
    testcases.TransactionTestCase._fixture_teardown = original


@pytest.fixture(scope="session", autouse=True)
def _empty_broker() -> None:
    """Start from an empty broker and cache (leftover messages from an earlier run would
    otherwise be claimed against this run's database)."""
    for url in (settings.CELERY_BROKER_URL, settings.CACHE_URL):
        redis.Redis.from_url(url).flushdb()


@pytest.fixture(autouse=True)
def _clear_cache() -> None:
    from django.core.cache import cache

    cache.clear()


@pytest.fixture(scope="session")
def corpus() -> Path:
    """The real-world corpus folder (``tests/corpus.py``). Where it is absent the test is
    skipped with one line saying how to point at it; under ``CI=true`` it fails."""
    problem = corpus_problem()
    if problem:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(problem, pytrace=False)
        pytest.skip(problem)
    return corpus_dir()


@pytest.fixture
def user(django_user_model):
    return django_user_model.objects.create_user("alice", password="x")


@pytest.fixture
def other_user(django_user_model):
    return django_user_model.objects.create_user("mallory", password="x")


@pytest.fixture
def api(user) -> APIClient:
    return make_client(user)


@pytest.fixture
def other_api(other_user) -> APIClient:
    return make_client(other_user)


# --- real processes -----------------------------------------------------------------------


@pytest.fixture(scope="session")
def processes(django_db_setup, tmp_path_factory) -> Iterator[Processes]:
    env = {**os.environ, "DATABASE_URL": database_url(), "PYTHONUNBUFFERED": "1"}
    # Webhook deliveries give up 12 s after their job ended (24 h in production): written
    # by whichever process ends the job, so every process of the session says so.
    env.setdefault("JOBSITE_WEBHOOK_RETRY_WINDOW", "12")
    # Beat's tally (the metrics' counts) reads events a second after it sees them.
    env.setdefault("JOBSITE_METRICS_LAG", "1")
    env.setdefault("JOBSITE_METRICS_ROLLUP_INTERVAL", "2")
    env.pop("DJANGO_SETTINGS_MODULE", None)
    procs = Processes(env, tmp_path_factory.mktemp("celery"))
    yield procs
    procs.stop_all()


@pytest.fixture(scope="session")
def platform(processes: Processes) -> Processes:
    """The always-on worker (default and maintenance queues) and beat (the sweeper).

    Tests that need a worker they may kill start their own on the ``media`` queue.
    """
    processes.platform = [
        processes.worker(queues=[Queue.DEFAULT, Queue.MAINTENANCE], concurrency=2, name="main"),
        processes.beat(),
    ]
    return processes


@pytest.fixture
def live(platform: Processes, transactional_db) -> Processes:
    """Real workers and beat; rows committed so they can see them. One that exited during
    an earlier test (a broker outage can end a worker: see ``Processes.revive``) is
    started again first, with a warning that shows its last log lines."""
    for name, report in platform.revive(platform.platform).items():
        warnings.warn(f"restarted platform process {name}, which {report}", stacklevel=1)
    return platform


@pytest.fixture(autouse=True)
def _stop_test_workers(request) -> Iterator[None]:
    """Workers a test started for itself (auto-named ``w<n>-<pid>``) stop with the test,
    whether it passed or not: one left consuming a queue would run the next test's jobs."""
    if "live" not in request.fixturenames:
        yield
        return
    processes = request.getfixturevalue("processes")
    before = len(processes.started)
    yield
    for proc in processes.started[before:]:
        if re.fullmatch(r"w\d+-\d+", proc.name) and proc.proc.poll() is None:
            proc.stop()


@pytest.fixture(scope="session")
def documents_worker(platform: Processes):
    """A worker on the documents and web queues that may fetch from this machine's
    loopback (127.0.0.1 only: other loopback addresses stand for refused ones)."""
    return platform.worker(
        queues=[Queue.DOCUMENTS, Queue.WEB],
        concurrency=2,
        name="documents",
        JOBSITE_FETCH_ALLOW_HOSTS="127.0.0.1",
    )


@pytest.fixture(scope="module")
def media_worker(platform: Processes) -> Iterator[CeleryProcess]:
    """One worker process on the media queue (a transcription takes a core), with a
    five-minute duration limit so a test can exceed it with a small file. Stopped after
    the module, not kept for the session: other tests route echo jobs to the media queue
    for workers they start and kill (test_recovery, test_task_events, the chaos suite),
    and a media worker left running would take their jobs."""
    worker = platform.worker(
        queues=[Queue.MEDIA],
        concurrency=1,
        name="media",
        JOBSITE_FETCH_ALLOW_HOSTS="127.0.0.1",
        JOBSITE_MEDIA_MAX_SECONDS="300",
        JOBSITE_WORKER_NICE="10",  # as docker-compose.yml's worker-media
    )
    yield worker
    worker.stop()


@pytest.fixture(scope="session")
def webhooks_worker(platform: Processes):
    """A worker on the webhooks queue that may deliver to this machine's loopback, with a
    short timeout and backoff so a test sees retries happen and end."""
    return platform.worker(
        queues=[Queue.WEBHOOKS],
        concurrency=4,
        name="webhooks",
        JOBSITE_FETCH_ALLOW_HOSTS="127.0.0.1",
        JOBSITE_WEBHOOK_TIMEOUT="1",
        JOBSITE_WEBHOOK_BACKOFF_BASE="0.2",
        JOBSITE_WEBHOOK_BACKOFF_MAX="1",
    )


@pytest.fixture(scope="session")
def web_server(platform: Processes):
    """One uvicorn process for the session (a low watcher limit, to test it)."""
    return platform.web(JOBSITE_MAX_WATCHERS_PER_KEY="250")


@pytest.fixture
def web(web_server, live):
    return web_server


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's), driven by Playwright: ``tests/browser.py``."""
    yield from launch()


@pytest.fixture(scope="session")
def gunicorn(platform: Processes):
    """The WSGI deployment (``jobsite/wsgi.py`` under gunicorn), for what it answers
    differently from the ASGI app."""
    return platform.web(wsgi=True)
