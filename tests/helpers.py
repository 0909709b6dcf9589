"""Helpers for tests: API clients with keys, real Celery processes, waiting for a job."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from rest_framework.test import APIClient

from jobs.auth import api_key_create
from jobs.models import Job

ROOT = Path(__file__).resolve().parent.parent


def make_client(user: Any) -> APIClient:
    _, key = api_key_create(user=user, name="test")
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    client.api_key = key  # type: ignore[attr-defined]
    return client


def database_url() -> str:
    """The test database, as the worker processes must reach it."""
    from django.db import connection

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        return f"sqlite:///{db['NAME']}"
    auth = db["USER"] + (f":{db['PASSWORD']}" if db["PASSWORD"] else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


class CeleryProcess:
    """A ``celery`` command in its own process group, its output in a log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args, self.env = args, env
        self.log_path = log_dir / f"{name}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        self.restarts = 0
        self._spawn()

    def _spawn(self) -> None:
        self.log_start = self.log_path.stat().st_size
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "jobsite", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def restart(self) -> None:
        """Start the same command again (its output goes on in the same log)."""
        self.restarts += 1
        self._spawn()

    def logged_since_start(self, text: bytes) -> bool:
        """Whether ``text`` is in what the current process has logged."""
        with open(self.log_path, "rb") as log:
            log.seek(self.log_start)
            return text in log.read()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill_group(self) -> None:
        """SIGKILL the worker and every pool process: a machine dying mid-job."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()  # warm shutdown: the main process stops its pool
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill_group()
        self._log.close()


class WebServer:
    """The web process as production runs it (``jobsite.serve``: the ASGI app under uvicorn
    with the server's limits), or with ``wsgi``, the WSGI deployment (``jobsite.wsgi``
    under gunicorn, one process of two threads); on a free loopback port."""

    def __init__(self, env: dict[str, str], log_dir: Path, *, wsgi: bool = False) -> None:
        from tests.plugin import free_port

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_dir / f"{'gunicorn' if wsgi else 'web'}-{self.port}.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115
        if wsgi:
            command = ["gunicorn", "jobsite.wsgi:application", "--bind", f"127.0.0.1:{self.port}"]
            command += ["--workers", "1", "--threads", "2"]
            ready = b"Booting worker"
        else:
            command = ["jobsite.serve", "--host", "127.0.0.1", "--port", str(self.port)]
            ready = b"Uvicorn running"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        wait_for(lambda: ready in self.log_path.read_bytes(), 30, command[0])

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self._log.close()


class Processes:
    """Starts workers and beat for the session and stops them all at the end."""

    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.started: list[CeleryProcess] = []
        self.count = 0
        self.platform: list[CeleryProcess] = []  # the always-on ones, revived if they exit

    def worker(
        self, *, queues: list[str], concurrency: int = 2, name: str | None = None, **env: str
    ) -> CeleryProcess:
        self.count += 1
        node = name or f"w{self.count}-{os.getpid()}"
        proc = CeleryProcess(
            node,
            [
                "worker",
                "-P",
                "prefork",
                "-c",
                str(concurrency),
                "-Q",
                ",".join(queues),
                "-n",
                f"{node}@%h",
                "--without-mingle",
                "--without-gossip",
                "-l",
                "INFO",
            ],
            {**self.env, **env},
            self.log_dir,
        )
        self.started.append(proc)
        self._wait_ready(proc)
        return proc

    @staticmethod
    def _wait_ready(proc: CeleryProcess) -> None:
        wait_for(lambda: proc.logged_since_start(b" ready."), 30, f"worker {proc.name} ready", proc)

    def revive(self, procs: list[CeleryProcess]) -> dict[str, str]:
        """Restart those of ``procs`` that have exited: by name, how each ended and what it
        had logged last.

        A worker can exit on its own after the broker goes away: kombu's Redis transport
        sometimes raises AttributeError while restoring unacknowledged messages on a
        connection it has already closed ('Unrecoverable error', celery/kombu#582), and
        the worker stops. Production restarts it (docker-compose.yml: restart:
        unless-stopped); the session's platform does the same, and says so.
        """
        revived = {}
        for proc in procs:
            if proc.proc.poll() is None:
                continue
            revived[proc.name] = f"exited ({proc.proc.returncode}):\n{proc.log()[-3000:]}"
            proc.restart()
            if proc.args[0] == "worker":
                self._wait_ready(proc)
        return revived

    def beat(self) -> CeleryProcess:
        proc = CeleryProcess(
            "beat",
            [
                "beat",
                "-S",
                "celery.beat:PersistentScheduler",
                "-s",
                str(self.log_dir / "beat-schedule"),
                "--max-interval",
                "1",
                "-l",
                "INFO",
            ],
            self.env,
            self.log_dir,
        )
        self.started.append(proc)
        return proc

    def web(self, *, wsgi: bool = False, **env: str) -> WebServer:
        server = WebServer({**self.env, **env}, self.log_dir, wsgi=wsgi)
        self.started.append(server)  # type: ignore[arg-type]
        return server

    def stop_all(self) -> None:
        """All at once: each stop waits for its process's warm shutdown."""
        with ThreadPoolExecutor(max_workers=max(1, len(self.started))) as pool:
            list(pool.map(lambda proc: proc.stop(), self.started))


def wait_for(
    condition: Callable[[], Any], timeout: float, what: str, proc: CeleryProcess | None = None
) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    detail = f"\n--- {proc.name} log ---\n{proc.log()[-4000:]}" if proc else ""
    raise AssertionError(f"timed out after {timeout} s waiting for {what}{detail}")


def wait_status(job_id: Any, statuses: set[str] | str, timeout: float = 20) -> Job:
    wanted = {statuses} if isinstance(statuses, str) else statuses

    def reached() -> Job | None:
        job = Job.objects.get(pk=job_id)
        return job if job.status in wanted else None

    try:
        return wait_for(reached, timeout, f"job {job_id} to reach {sorted(wanted)}")
    except AssertionError:
        job = Job.objects.get(pk=job_id)
        events = list(job.events.values_list("from_status", "to_status", "reason"))
        raise AssertionError(
            f"job {job_id} is {job.status}, wanted {sorted(wanted)}; events: {events}"
        ) from None
