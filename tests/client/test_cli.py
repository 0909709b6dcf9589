"""The ``jobsite`` command against a live server, as a user runs it (a process of its
own): its progress output while it waits, its exit codes for scripts, JSON on request,
and ``--help`` on every command."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
from jobsite_client import Jobsite

from processing import services
from processing.chunking import Chunk

pytestmark = [pytest.mark.worker]
COMMANDS = ["submit", "list", "show", "cancel", "restart", "watch", "stats", "search"]


@pytest.fixture
def run(web, api):
    env = {**os.environ, "JOBSITE_URL": web.url, "JOBSITE_API_KEY": api.api_key, "COLUMNS": "200"}

    def run(*args: str, **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "jobsite_client.cli", *args],
            env=kwargs.pop("env", env),
            capture_output=True,
            text=True,
            timeout=120,
            **kwargs,
        )

    run.env = env
    return run


def test_submit_and_wait_shows_progress_and_exits_by_how_the_job_ended(run, tmp_path):
    done = run("submit", "--type", "echo", "-p", "duration_s=1", "-p", "steps=4",
               "-p", "payload=\"hello\"", "--wait")  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stderr.splitlines()
    assert lines[-1].startswith("completed") and "100.0%" in lines[-1]
    assert any("step 2 of 4" in line for line in lines)  # the steps went by
    assert '"hello"' in done.stdout and "completed" in done.stdout

    failed = run("submit", "--type", "echo", "--params",
                 '{"fail_times": 5}', "--wait", "--json")  # fmt: skip
    assert failed.returncode == 1, failed.stderr
    assert json.loads(failed.stdout)["status"] == "failed"

    waiting = subprocess.Popen(
        [sys.executable, "-m", "jobsite_client.cli", "submit", "--type", "echo",
         "-p", "duration_s=30", "-p", "steps=30", "--wait"],
        env=run.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    client = Jobsite(run.env["JOBSITE_URL"], run.env["JOBSITE_API_KEY"])
    deadline = time.monotonic() + 30
    while not (going := list(client.jobs.list(status="running", type="echo"))):
        assert time.monotonic() < deadline, "the job never ran"
        time.sleep(0.2)
    cancelled = run("cancel", going[0].id)
    assert cancelled.returncode == 0 and "cancel requested" in cancelled.stdout
    assert waiting.wait(60) == 3
    assert run("show", going[0].id, "--json").returncode == 0

    missing = run("show", "00000000-0000-4000-8000-000000000000")
    assert missing.returncode == 4 and "not_found" in missing.stderr


def test_a_file_is_submitted_and_lists_show_and_search_answer(run, user, tmp_path):
    collection = services.collection_create(owner=user, name="cli")
    page = tmp_path / "notes.txt"
    page.write_text("Glaciers carve valleys, and moraines remain.")
    made = run("submit", str(page), "--collection", str(collection.pk), "--json")
    assert made.returncode == 0, made.stderr
    job = json.loads(made.stdout)
    assert job["type"] == "document_processing" and job["has_file"] is True

    listed = run("list", "--json", "--limit", "5")
    assert listed.returncode == 0 and job["job_id"] in {
        j["job_id"] for j in json.loads(listed.stdout)
    }
    table = run("list")
    assert "document_processing" in table.stdout
    services.memories_store(
        collection_id=collection.pk,
        job_id=None,
        source="moraines.txt",
        source_type="text",
        source_hash="m",
        chunks=[Chunk(text="Moraines remain.", unit=1, unit_kind="page", blocks=(0, 0))],
    )
    found = run("search", "moraines", "--collection", str(collection.pk), "--json")
    assert [hit["source"] for hit in json.loads(found.stdout)] == ["moraines.txt"]
    assert "moraines.txt" in run("search", "moraines").stdout
    stats = run("stats", "--json")
    assert stats.returncode == 0 and isinstance(json.loads(stats.stdout), dict)
    watched = run("watch", "--once")
    assert watched.returncode == 0 and "going" in watched.stdout
    restarted = run("restart", job["job_id"])
    assert restarted.returncode == 4 and "job_not_restartable" in restarted.stderr


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_help(run, command):
    shown = run(command, "--help")
    assert shown.returncode == 0 and "Usage: " in shown.stdout


def test_timeout_gives_up_on_a_job_that_sends_nothing(run):
    """One step of 30 s: after "running" the stream is silent (keepalives only), so the
    deadline must interrupt the read rather than wait for a change."""
    started = time.monotonic()
    done = run("submit", "--type", "echo", "-p", "duration_s=30", "-p", "steps=1",
               "--wait", "--timeout", "2")  # fmt: skip
    took = time.monotonic() - started
    assert done.returncode == 4, done.stderr
    assert "gave up waiting after 2 s; the job goes on" in done.stderr
    assert took < 15, took


def test_bad_input_and_refusals_exit_as_documented_without_a_traceback(run):
    bad = run("submit", "--type", "echo", "--params", "{nope")
    assert bad.returncode == 2 and "not JSON" in bad.stderr
    assert run("submit", "--type", "echo", "--params", "[1]").returncode == 2
    wrong = {**run.env, "JOBSITE_API_KEY": "jsk_wrong"}
    for command in (["list"], ["watch", "--once"], ["watch", "--json"]):
        refused = run(*command, env=wrong)
        assert refused.returncode == 4, (command, refused.stderr)
        assert "Traceback" not in refused.stderr and "401" in refused.stderr
