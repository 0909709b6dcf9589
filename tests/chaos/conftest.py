"""Fault injection: real processes, real faults, one invariant.

Every scenario submits a known set of jobs, injects its fault, waits, and checks that every
job ended terminal (completed, or failed with a specific reason), none stayed pending or
running, and none wrote its effects twice (the echo ledger). Each prints submitted /
completed / failed by reason / lost / duplicated and the time to recover.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from django.db import connection
from django.db.models import Count

from jobs.models import TERMINAL_STATUSES, Job
from jobs.queues import Queue
from jobs.services import job_create
from jobs.transitions import can_transition
from jobsite.ports import wait_for_port
from processing.models import EchoWrite
from tests import plugin

REPORTS: list[Report] = []


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() == "true"


def cannot_run(reason: str) -> None:
    """A scenario that cannot run here says so, and fails under CI=true."""
    if in_ci():
        pytest.fail(f"chaos scenario cannot run: {reason}")
    pytest.skip(reason)


@dataclass
class Report:
    scenario: str
    submitted: int
    by_status: Counter = field(default_factory=Counter)
    failed_by: Counter = field(default_factory=Counter)
    lost: int = 0
    duplicated: int = 0
    recovery_s: float = 0.0
    notes: str = ""

    def line(self) -> str:
        failed = ", ".join(f"{code}: {n}" for code, n in sorted(self.failed_by.items())) or "-"
        return (
            f"{self.scenario:<38} submitted {self.submitted:>4}  completed "
            f"{self.by_status.get('completed', 0):>4}  cancelled "
            f"{self.by_status.get('cancelled', 0):>3}  failed {sum(self.failed_by.values()):>3} "
            f"({failed})  lost {self.lost}  duplicated {self.duplicated}  "
            f"recovered in {self.recovery_s:.1f} s {self.notes}"
        )


def submit(user: Any, n: int, *, queue: str = Queue.MEDIA, **params: Any) -> list[str]:
    params.setdefault("write_payload", True)
    return [
        str(
            job_create(owner=user, job_type="echo", params=params, actor="chaos", queue=queue)[0].pk
        )
        for _ in range(n)
    ]


def settle(job_ids: list[str], timeout: float, supervisor: Supervisor | None = None) -> float:
    """Wait until every job is terminal; the seconds it took (or the timeout)."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if supervisor is not None:
            supervisor.check()
        try:
            open_jobs = Job.objects.filter(pk__in=job_ids).exclude(status__in=TERMINAL_STATUSES)
            if not open_jobs.exists():
                break
        except Exception:  # the database may be restarting under us
            connection.close()
        time.sleep(0.2)
    return time.monotonic() - started


class Supervisor:
    """What a restart policy does in production (docker-compose.yml: unless-stopped): start
    again a worker that exited. A broker outage can end a Celery worker (see
    ``tests.helpers.Processes.revive``); the scenario's promise is that no job is lost
    when that happens, not that the process survives it. Each restart is reported."""

    def __init__(self, processes: Any, procs: list[Any]) -> None:
        self.processes, self.procs = processes, procs
        self.restarts: list[str] = []

    def check(self) -> None:
        for name, report in self.processes.revive(self.procs).items():
            self.restarts.append(name)
            print(f"chaos: restarted {name} after the fault; it {report}")

    def notes(self) -> str:
        return f" ({', '.join(self.restarts)}; restarted)" if self.restarts else ""


def report(scenario: str, job_ids: list[str], recovery_s: float, notes: str = "") -> Report:
    jobs = list(Job.objects.filter(pk__in=job_ids).prefetch_related("events"))
    result = Report(scenario, len(job_ids), recovery_s=recovery_s, notes=notes)
    result.by_status = Counter(job.status for job in jobs)
    result.failed_by = Counter(job.error_code for job in jobs if job.status == "failed")
    result.lost = (
        sum(job.status not in TERMINAL_STATUSES for job in jobs) + len(job_ids) - len(jobs)
    )
    writes = dict(
        EchoWrite.objects.filter(job_id__in=job_ids)
        .values_list("job_id")
        .annotate(n=Count("id"))
        .values_list("job_id", "n")
    )
    result.duplicated = sum(n > 1 for n in writes.values())
    REPORTS.append(result)
    for job in jobs:
        check_event_chain(job)
    return result


def check_event_chain(job: Job) -> None:
    """The event log tells one consistent story: each transition starts where the last ended
    and is allowed by the rules."""
    status = ""
    for event in job.events.all():
        if event.kind != "transition":
            continue
        if status:
            assert event.from_status == status, (job.pk, status, event.from_status)
            assert can_transition(event.from_status, event.to_status), (job.pk, event)
        status = event.to_status
    assert status == job.status, (job.pk, status, job.status)


def assert_invariant(result: Report, *, allowed_failures: set[str] = frozenset()) -> None:
    assert result.lost == 0, result.line()
    assert result.duplicated == 0, result.line()
    unexpected = set(result.failed_by) - allowed_failures
    assert not unexpected, result.line()


# --- fault controls -------------------------------------------------------------------------


class BrokerControl:
    """Stop and start the broker this run uses: the embedded Valkey, or the local Redis."""

    def __init__(self) -> None:
        self.embedded = plugin.EMBEDDED

    def stop(self) -> None:
        if self.embedded is not None:
            self.embedded.stop()
            return
        if os.geteuid() != 0 or not shutil.which("redis-cli"):
            cannot_run("stopping the local Redis needs root and redis-cli")
        subprocess.run(["redis-cli", "-p", "6379", "shutdown", "nosave"], check=False)

    def start(self) -> None:
        if self.embedded is not None:
            self.embedded.start()
            return
        Path("/var/log/redis").mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                "redis-server",
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "-::1",
                "--port",
                "6379",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                "/var/lib/redis",
                "--logfile",
                "/var/log/redis/ci.log",
            ],
            check=True,
        )
        assert wait_for_port("127.0.0.1", 6379, 10, interval=0.1), "Redis did not come back"


@pytest.fixture
def broker() -> BrokerControl:
    control = BrokerControl()
    yield control
    if not plugin.reachable(os.environ["CELERY_BROKER_URL"]):
        control.start()


def restart_postgres() -> None:
    if connection.vendor != "postgresql":
        pytest.skip("no database server in the embedded default (SQLite)")
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if os.geteuid() != 0 or not shutil.which("pg_ctlcluster") or not versions:
        cannot_run("restarting PostgreSQL needs root and pg_ctlcluster")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", versions[-1], "main", "restart"], check=True
    )
    connection.close()


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if REPORTS:
        terminalreporter.section("chaos scenarios")
        for result in REPORTS:
            terminalreporter.write_line(result.line())
