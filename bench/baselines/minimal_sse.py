"""The floor for live updates: a bare ASGI app, one Redis subscription per process fanning
out to per-client queues; no Django, no auth, no database. Same channel and message format
as Jobsite (``jobs.live.notify``), so the same load drives both."""

from __future__ import annotations

import asyncio
import json
import os

import redis.asyncio as aioredis

CHANNEL = "jobsite:live:jobs"
URL = os.environ.get("CELERY_BROKER_URL", "redis://127.0.0.1:6379/0")
TERMINAL = {"completed", "failed", "cancelled"}

waiters: dict[str, set[asyncio.Queue]] = {}
reader: asyncio.Task | None = None


async def read() -> None:
    pubsub = aioredis.Redis.from_url(URL).pubsub(ignore_subscribe_messages=True)
    await pubsub.subscribe(CHANNEL)
    async for message in pubsub.listen():
        _seq, _, body = message["data"].partition(b" ")
        event = json.loads(body)
        for queue in waiters.get(event["job_id"], ()):
            queue.put_nowait(event)


async def app(scope, receive, send):
    global reader
    if scope["type"] != "http":
        return
    if reader is None:
        reader = asyncio.create_task(read())
        await asyncio.sleep(0.05)
    kind, _, job_id = scope["path"].strip("/").partition("/")
    queue: asyncio.Queue = asyncio.Queue()
    waiters.setdefault(job_id, set()).add(queue)
    try:
        if kind == "poll":
            while (event := await queue.get())["status"] not in TERMINAL:
                pass
            body = json.dumps(event).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            await send({"type": "http.response.body", "body": body})
            return
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [(b"content-type", b"text/event-stream")],
            }
        )
        state = {"job_id": job_id, "status": "running", "progress": 0}
        await send(
            {
                "type": "http.response.body",
                "more_body": True,
                "body": f"data: {json.dumps(state)}\n\n".encode(),
            }
        )
        while True:
            event = await queue.get()
            await send(
                {
                    "type": "http.response.body",
                    "more_body": True,
                    "body": f"data: {json.dumps(event)}\n\n".encode(),
                }
            )
            if event["status"] in TERMINAL:
                break
        await send({"type": "http.response.body", "body": b""})
    finally:
        waiters[job_id].discard(queue)
