"""``make run``'s launcher, end to end: Valkey, web, worker, beat and Flower start together,
serve a job, and stop together on Ctrl-C (SIGINT to the process group)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import httpx
import psutil
import pytest

from tests.helpers import ROOT, wait_for
from tests.plugin import free_port

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="make run is the embedded default: tested in the embedded suite",
    ),
]


def test_make_run_starts_everything_serves_a_job_and_stops_on_ctrl_c(tmp_path):
    ports = {"PORT": free_port(), "JOBSITE_VALKEY_PORT": free_port(), "FLOWER_PORT": free_port()}
    env = {
        name: value
        for name, value in os.environ.items()
        if name not in ("DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "JOBSITE_FLOWER_URL")
    }
    env.update({name: str(port) for name, port in ports.items()})
    env["JOBSITE_VAR_DIR"] = str(tmp_path / "var")
    log = tmp_path / "run.log"
    with open(log, "wb") as out:
        launcher = subprocess.Popen(
            [sys.executable, "-m", "jobsite.embedded"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_for(lambda: b"Jobsite is running" in log.read_bytes(), 90, "the banner")
        text = log.read_text()
        key = re.search(r"API key:\s+(\S+)", text)[1]
        password = re.search(r"Password:\s+(\S+)", text)[1]
        assert (tmp_path / "var" / "credentials.txt").exists()
        base = f"http://127.0.0.1:{ports['PORT']}"
        for name in ("API docs", "Admin", "Flower"):
            assert f"{name}:" in text
        flower = f"http://127.0.0.1:{ports['FLOWER_PORT']}/"
        wait_for(lambda: _flower_up(flower), 60, "flower")
        assert httpx.get(flower).status_code == 401
        assert httpx.get(flower, auth=("admin", password)).status_code == 200
        time.sleep(2)  # Flower has subscribed to the workers' task events
        auth = {"Authorization": f"Bearer {key}"}
        job = httpx.post(
            f"{base}/api/v1/jobs/", json={"type": "echo", "params": {"payload": 1}}, headers=auth
        ).json()

        def completed():
            body = httpx.get(f"{base}/api/v1/jobs/status/{job['job_id']}", headers=auth).json()
            return body["status"] == "completed"

        wait_for(completed, 60, "the job to complete")

        def in_flower():
            tasks = httpx.get(f"{flower}api/tasks", auth=("admin", password)).json()
            return [t for t in tasks.values() if job["job_id"] in str(t.get("args"))]

        # Flower shows the task under the job's type, with the job id in its arguments.
        task = wait_for(in_flower, 30, "the task in Flower")[0]
        assert task["name"] == "jobs.run:echo" and task["state"] == "SUCCESS"
        family = [launcher.pid, *(p.pid for p in psutil.Process(launcher.pid).children(True))]
        assert len(family) >= 5  # valkey, web, worker (+ pool), beat, flower
    finally:
        os.killpg(launcher.pid, signal.SIGINT)  # what Ctrl-C in a terminal sends
        try:
            launcher.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(launcher.pid, signal.SIGKILL)
            raise
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and any(_alive(pid) for pid in family):
        time.sleep(0.2)
    assert [pid for pid in family if _alive(pid)] == [], log.read_text()[-3000:]


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _flower_up(url: str) -> bool:
    try:
        return httpx.get(url).status_code in (200, 401)
    except httpx.HTTPError:
        return False
