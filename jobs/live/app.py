"""Long-poll and Server-Sent-Event endpoints, as a small async ASGI app beside Django.

They bypass Django's request handler on purpose: its middleware and request signals run
sync code through a thread bound to the request, and for a stream that thread would live
as long as the stream (one OS thread per watcher). Here a waiting client is a coroutine
and a ``Watcher``: the database is read once up front (auth and the job, in the shared
thread pool, the connection given back at once) and once more when a long-poll answers.
Auth, owner isolation (404) and the JSON error shape are the API's own.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async
from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.http import HttpRequest
from django.urls import Resolver404, URLResolver
from django.urls.resolvers import RegexPattern

from jobs import auth, selectors
from jobs.api.errors import error_body
from jobs.api.routing import API_PREFIX
from jobs.api.serializers import JobSerializer
from jobs.errors import InvalidInput, JobsiteError, error_fields
from jobs.live.hub import KEEPALIVE, RESYNC, Watcher, hub, sse
from jobs.models import STATUS_SYNONYMS, TERMINAL_STATUSES, JobStatus, status_from_client
from jobs.timestamps import iso

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

# The live routes (jobs/live/urls.py), matched on their own: only they, and before Django.
_routes = URLResolver(RegexPattern(rf"^/{API_PREFIX}"), "jobs.live.urls")

# Watchers per principal in this process (the per-key limit).
_open: Counter[str] = Counter()
# Where Django reports a disallowed Host.
_security_log = logging.getLogger("django.security.DisallowedHost")


def route(path: str) -> tuple[str, str] | None:
    """``(kind, job_id)`` of a live route (``poll`` or ``stream``), or None."""
    try:
        found = _routes.resolve(path)
    except Resolver404:
        return None
    return found.kwargs["kind"], found.kwargs["job_id"]


async def _json(send: Send, status: int, body: Any, headers: list[tuple[bytes, bytes]] = ()):
    payload = json.dumps(body, default=str).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                *headers,
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def _query(scope: Scope) -> dict[str, str]:
    raw = parse_qs(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
    return {name: values[-1] for name, values in raw.items()}


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin-1")
    return ""


def _host_allowed(scope: Scope) -> bool:
    """Django's own ``ALLOWED_HOSTS`` check (``HttpRequest.get_host``, with its
    ``X-Forwarded-Host`` and ``DEBUG`` rules): this app answers before Django would."""
    request = HttpRequest()
    server_name, server_port = scope.get("server") or ("", "")
    request.META = {"SERVER_NAME": server_name, "SERVER_PORT": str(server_port or "")}
    for name, meta in ((b"host", "HTTP_HOST"), (b"x-forwarded-host", "HTTP_X_FORWARDED_HOST")):
        if value := _header(scope, name):
            request.META[meta] = value
    try:
        request.get_host()
    except DisallowedHost as exc:
        _security_log.error("%s", exc)
        return False
    return True


def _number(query: dict[str, str], name: str, default: float | None, low: float, high: float):
    if name not in query:
        return default
    try:
        value = float(query[name])
    except ValueError:
        value = math.nan
    if not low <= value <= high:  # also false for NaN
        raise InvalidInput(
            f"{name} must be a number from {low:g} to {high:g}",
            details={name: [f"must be from {low:g} to {high:g}"]},
        )
    return value


def state_of(job: Any) -> dict[str, Any]:
    """What a stream event says about a job (the Compileo fields, and ours)."""
    state: dict[str, Any] = {
        "job_id": str(job.pk),
        "status": job.status,
        "progress": job.progress,
        "current_step": job.current_step,
        "timestamp": iso(job.updated_at),
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested_at is not None,
        **error_fields(job.status, job.error_code, job.error_message),
    }
    if job.status == JobStatus.COMPLETED:
        state["result"] = job.result
    return state


class Client:
    """A connected client: notices the disconnect without a read per wait."""

    def __init__(self, receive: Receive, watcher: Watcher) -> None:
        self._watcher = watcher
        self._task = asyncio.create_task(self._listen(receive))

    @property
    def gone(self) -> bool:
        return self._watcher.gone

    async def _listen(self, receive: Receive) -> None:
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                self._watcher.gone = True
                self._watcher.wake.set()
                return

    def close(self) -> None:
        self._task.cancel()


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind, job_id = route(scope["path"]) or ("", "")
    if not _host_allowed(scope):  # as Django answers a disallowed Host on an API path
        await _json(send, 400, error_body("bad_request", "Bad request"))
        return
    if scope.get("method") not in ("GET", "HEAD"):
        await _json(send, 405, error_body("method_not_allowed", "Only GET is allowed"))
        return
    query = _query(scope)
    key = auth.key_from_header_values(
        _header(scope, b"authorization"), _header(scope, b"x-api-key")
    )
    token = query.get("token")
    live = hub()
    await live.start()
    with live.watch(job_id, stream=kind == "stream") as watcher:
        # Watch first, then read: a change between the two is in the watcher, not lost.
        seq = await live.current_seq(job_id)
        try:
            job, principal = await sync_to_async(selectors.live_target, thread_sensitive=False)(
                key=key, token=token, job_id=job_id, address=(scope.get("client") or ("",))[0]
            )
            if kind == "poll":
                timeout = _number(query, "timeout", 30, 1, 300)
                status = query.get("current_status")
                if status is not None and (status := status_from_client(status)) is None:
                    allowed = ", ".join([*JobStatus.values, *STATUS_SYNONYMS])
                    raise InvalidInput(
                        "current_status is not a job status",
                        details={"current_status": [f"one of {allowed}"]},
                    )
                progress = _number(query, "current_progress", None, 0, 100)
        except JobsiteError as exc:
            wait = getattr(exc, "retry_after", None)
            headers = [(b"retry-after", str(math.ceil(wait)).encode())] if wait else []
            await _json(send, exc.status, error_body(exc.code, exc.message, exc.details), headers)
            return
        if _open[principal] >= settings.JOBSITE_MAX_WATCHERS_PER_KEY:
            await _json(
                send,
                429,
                error_body("too_many_watchers", "Too many open streams and polls for this key"),
                [(b"retry-after", b"5")],
            )
            return
        state = state_of(job)
        live.seed(job_id, seq, state)
        _open[principal] += 1
        client = Client(receive, watcher)
        try:
            if kind == "poll":
                await _poll(send, job, seq, watcher, timeout, status, progress)
            else:
                last = _header(scope, b"last-event-id")
                await _stream(send, job.pk, state, seq, watcher, last)
        finally:
            client.close()
            _open[principal] -= 1
            if not _open[principal]:
                del _open[principal]


async def _poll(
    send: Send,
    job: Any,
    seq: int,
    watcher: Watcher,
    timeout: float,
    status: str | None,
    progress: float | None,
) -> None:
    """Answer at once if the job differs from what the client knows, else at the first
    change after ``seq`` (the read), else at the timeout: always the status endpoint's
    JSON."""

    # Without current_status, the status the job had when the poll came in is the baseline.
    known = status if status is not None else job.status

    def differs(current_status: str, current_progress: float) -> bool:
        if current_status != known:
            return True
        return progress is not None and current_progress != progress

    changed = differs(job.status, job.progress)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    timer = loop.call_at(deadline, watcher.wake.set)
    try:
        while not changed and not watcher.gone and loop.time() < deadline:
            for item in await watcher.next_batch():
                if item == RESYNC:
                    changed = True
                elif item != KEEPALIVE and item[0] > seq:  # not already in what was read
                    state = item[1]
                    changed = changed or differs(state["status"], state.get("progress", 0))
    finally:
        timer.cancel()
    if watcher.gone:
        return
    # The answer is the job as it is now (one read), in the status endpoint's shape.
    job = await sync_to_async(selectors.live_reload, thread_sensitive=False)(job.pk)
    await _json(send, 200, JobSerializer(job).data)


async def _stream(
    send: Send, job_id: Any, state: dict[str, Any], seq: int, watcher: Watcher, last_event_id: str
) -> None:
    """One event per change, in order; the first is the current state (unless the client
    resumes with ``Last-Event-ID`` at that very state); ends after a terminal state."""
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"text/event-stream; charset=utf-8"),
                (b"cache-control", b"no-cache, no-transform"),
                # nginx and friends must pass each event through at once.
                (b"x-accel-buffering", b"no"),
            ],
        }
    )
    sent = seq
    opening = b"retry: 3000\n\n"
    if last_event_id != str(seq):
        opening += sse(state, seq)
    await send({"type": "http.response.body", "body": opening, "more_body": True})
    done = state["status"] in TERMINAL_STATUSES
    while not done:
        batch = await watcher.next_batch()
        if watcher.gone:
            return
        chunks = []
        for item in batch:
            if item == KEEPALIVE:
                chunks.append(b": keepalive\n\n")
            elif item == RESYNC:
                sent = await hub().current_seq(job_id)
                fresh = await sync_to_async(selectors.live_reload, thread_sensitive=False)(job_id)
                state = state_of(fresh)
                hub().seed(str(job_id), sent, state)
                chunks.append(sse(state, sent))
            elif item[0] > sent:
                sent, state, payload = item
                chunks.append(payload)
            done = state["status"] in TERMINAL_STATUSES
            if done:
                break
        if chunks:
            await send({"type": "http.response.body", "body": b"".join(chunks), "more_body": True})
            watcher.quiet_since = asyncio.get_running_loop().time()
    await send({"type": "http.response.body", "body": b"", "more_body": False})
