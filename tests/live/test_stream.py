"""Server-Sent Events against the real ASGI server and real workers."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import httpx
import psutil
import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.utils import timezone

from tests.helpers import wait_status

pytestmark = [pytest.mark.worker]

TERMINAL = {"completed", "failed", "cancelled"}


def headers(api, **extra) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.api_key}", **extra}


def read_events(response: httpx.Response) -> list[tuple[int, dict]]:
    """All events until the server ends the stream."""
    events, event_id = [], None
    for line in response.iter_lines():
        if line.startswith("id: "):
            event_id = int(line[4:])
        elif line.startswith("data: "):
            events.append((event_id, json.loads(line[6:])))
    return events


def test_every_change_in_order_then_the_stream_ends(web, api):
    job_id = api.post(
        "/api/v1/jobs/",
        {"type": "echo", "params": {"duration_s": 1, "steps": 5, "fail_times": 1}},
        format="json",
    ).json()["job_id"]
    url = f"{web.url}/api/v1/jobs/status/{job_id}/stream"
    with httpx.stream("GET", url, headers=headers(api), timeout=30) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"].startswith("no-cache")
        assert response.headers["x-accel-buffering"] == "no"
        events = read_events(response)
    ids = [event_id for event_id, _ in events]
    assert ids == sorted(set(ids)), ids
    statuses = [event["status"] for _, event in events]
    assert statuses[-1] == "completed" and statuses.count("completed") == 1
    assert "retrying" in statuses  # the first attempt fails on purpose
    # Transitions arrive in the order they happened.
    changes = [s for i, s in enumerate(statuses) if i == 0 or s != statuses[i - 1]]
    assert changes[-3:] == ["retrying", "running", "completed"]
    last = events[-1][1]
    assert set(last) >= {"job_id", "status", "progress", "current_step", "timestamp"}
    assert last["progress"] == 100 and last["current_step"] == "step 5 of 5"
    running = [e["progress"] for _, e in events if e["status"] == "running" and e["attempts"] == 2]
    assert running == sorted(running) and any(0 < p < 100 for p in running)


def test_first_event_is_the_current_state_and_a_finished_job_ends_at_once(web, api):
    job_id = api.post("/api/v1/jobs/", {"type": "echo"}, format="json").json()["job_id"]
    assert wait_status(job_id, "completed").status == "completed"
    with httpx.stream(
        "GET", f"{web.url}/api/v1/jobs/{job_id}/stream/", headers=headers(api), timeout=10
    ) as response:
        events = read_events(response)
    assert len(events) == 1 and events[0][1]["status"] == "completed"
    assert events[0][1]["result"] is None


def test_resume_with_last_event_id_skips_what_the_client_has(web, api):
    run_at = (timezone.now() + timedelta(hours=1)).isoformat()
    job_id = api.post("/api/v1/jobs/", {"type": "echo", "run_at": run_at}, format="json").json()[
        "job_id"
    ]
    url = f"{web.url}/api/v1/jobs/{job_id}/stream/"
    with httpx.stream("GET", url, headers=headers(api), timeout=10) as response:
        lines = response.iter_lines()
        first_id = next(int(line[4:]) for line in lines if line.startswith("id: "))
    api.post(f"/api/v1/jobs/{job_id}/cancel/")
    with httpx.stream(
        "GET", url, headers=headers(api, **{"Last-Event-ID": str(first_id)}), timeout=10
    ) as response:
        events = read_events(response)
    assert [e["status"] for _, e in events] == ["cancelled"]
    assert events[0][0] > first_id
    with httpx.stream(
        "GET", url, headers=headers(api, **{"Last-Event-ID": str(events[0][0])}), timeout=10
    ) as response:
        assert read_events(response) == []  # nothing new, and the job is finished


async def _open_stream(client: httpx.AsyncClient, url: str, ready: asyncio.Event, seen: list):
    async with client.stream("GET", url) as response:
        if response.status_code != 200:
            seen.append(("http", response.status_code))
            return
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                event = json.loads(line[6:])
                if event["status"] in TERMINAL:
                    seen.append(("done", event["status"]))
                    return
                ready.set()


def test_hundreds_of_streams_on_one_process_hold_no_thread_each(web, api):
    run_at = (timezone.now() + timedelta(hours=1)).isoformat()
    job_ids = [
        api.post("/api/v1/jobs/", {"type": "echo", "run_at": run_at}, format="json").json()[
            "job_id"
        ]
        for _ in range(5)
    ]
    server = psutil.Process(web.proc.pid)

    def cancel_all() -> None:
        for job_id in job_ids:
            api.post(f"/api/v1/jobs/{job_id}/cancel/")
        connection.close()  # the helper thread's own connection

    async def scenario():
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=0)
        async with httpx.AsyncClient(headers=headers(api), limits=limits, timeout=60) as client:
            seen: list = []
            await asyncio.wait_for(
                _open_stream_once(client, f"{web.url}/api/v1/jobs/{job_ids[0]}/stream/"), 10
            )
            threads_before = server.num_threads()
            readies = [asyncio.Event() for _ in range(250)]
            tasks = [
                asyncio.create_task(
                    _open_stream(
                        client, f"{web.url}/api/v1/jobs/{job_ids[i % 5]}/stream/", readies[i], seen
                    )
                )
                for i in range(250)
            ]
            await asyncio.wait_for(asyncio.gather(*(r.wait() for r in readies)), 60)
            threads_open = server.num_threads()
            # Past the per-key limit (250 for this server): a 429, not a 251st stream.
            refused = await client.get(f"{web.url}/api/v1/jobs/{job_ids[0]}/stream/")
            await sync_to_async(cancel_all)()
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            return threads_before, threads_open, refused, seen

    threads_before, threads_open, refused, seen = asyncio.run(scenario())
    assert refused.status_code == 429 and refused.json()["error"]["code"] == "too_many_watchers"
    assert seen.count(("done", "cancelled")) == 250, seen[:5]
    assert threads_open - threads_before < 10, (threads_before, threads_open)


async def _open_stream_once(client: httpx.AsyncClient, url: str) -> None:
    """Warm the server up (hub subscribed, thread pool started) before counting threads."""
    async with client.stream("GET", url) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                return
