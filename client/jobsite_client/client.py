"""``Jobsite`` and ``AsyncJobsite``: the same calls over one httpx client, blocking or
awaited.

Each call is described once (``_Call``: method, path, query, body, files) by the shared
resource code, and sent by the sync or the async transport. Sending retries a 429 or a
503 with exponential backoff and jitter, waiting what ``Retry-After`` asks when the
server says, and a connection that failed: always when nothing was sent, and after a lost
answer when sending again is harmless. A create carries an ``Idempotency-Key`` (one is
made when none is given), so a create retried after a lost answer never makes a second
job.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx
from httpx_sse import aconnect_sse, connect_sse
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    retry_if_result,
    stop_after_attempt,
    wait_exponential_jitter,
)

from jobsite_client import errors
from jobsite_client.models import TERMINAL, Batch, Job
from jobsite_client.webhooks import Webhooks

RETRY_STATUSES = (429, 503)
DEFAULT_RETRIES = 4
# A long-poll asks the server to hold this long at most (its own cap is 300 s).
POLL_SECONDS = 30.0
_backoff = wait_exponential_jitter(multiplier=0.5, max=30.0, jitter=0.5)


def _wait(state: RetryCallState) -> float:
    """``Retry-After`` when the answer gives one (seconds or an HTTP date), else backoff."""
    outcome = state.outcome
    if outcome is not None and not outcome.failed:
        header = outcome.result().headers.get("retry-after")
        if header:
            try:
                return min(60.0, max(0.0, float(header)))
            except ValueError:
                try:
                    when = parsedate_to_datetime(header)
                except (TypeError, ValueError):
                    return _backoff(state)
                return min(60.0, max(0.0, (when - datetime.now(UTC)).total_seconds()))
    return _backoff(state)


# Sent again after any of these: nothing reached the server.
_NOTHING_SENT = (httpx.ConnectError, httpx.ConnectTimeout)
# Sent again after these only when that is harmless (``_Call.replayable``): the server may
# have acted on the request before its answer was lost.
_ANSWER_LOST = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ReadTimeout)
_TRANSPORT = (*_NOTHING_SENT, *_ANSWER_LOST)


def _retrying_kwargs(retries: int, replayable: bool) -> dict[str, Any]:
    lost = _TRANSPORT if replayable else _NOTHING_SENT
    return {
        "stop": stop_after_attempt(retries + 1),
        "wait": _wait,
        "retry": retry_if_result(lambda r: r.status_code in RETRY_STATUSES)
        | retry_if_exception_type(lost),
        # Out of retries: the last answer (a 429 or 503) is parsed into its exception, and a
        # connection error is raised as it was.
        "retry_error_callback": lambda state: state.outcome.result(),
        "reraise": True,
    }


@dataclass
class _Call:
    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: Any = None
    data: dict[str, Any] | None = None
    files: dict[str, Any] | None = None
    headers: dict[str, str] = field(default_factory=dict)
    timeout: float | None = None

    @property
    def replayable(self) -> bool:
        """A read, or a write the server deduplicates by its Idempotency-Key: sending it
        twice does what sending it once does."""
        return self.method == "GET" or "Idempotency-Key" in self.headers

    def kwargs(self) -> dict[str, Any]:
        out: dict[str, Any] = {"headers": self.headers}
        params = {k: v for k, v in self.params.items() if v is not None}
        if params:  # an empty one would wipe the query of a ``next`` page's URL (httpx)
            out["params"] = params
        if self.json is not None:
            out["json"] = self.json
        if self.data is not None:
            out["data"] = self.data
        if self.files is not None:
            out["files"] = self.files
        if self.timeout is not None:
            out["timeout"] = self.timeout
        return out


def _parse(response: httpx.Response) -> Any:
    """The JSON of a success, or the exception of an error."""
    if response.status_code == 204:
        return None
    try:
        body = response.json()
    except ValueError:
        body = None
    if response.is_success:
        return body
    raise errors.from_response(response.status_code, body, response.reason_phrase or "error")


def _settings(base_url: str | None, api_key: str | None) -> tuple[str, str]:
    url = base_url or os.environ.get("JOBSITE_URL") or "http://127.0.0.1:8000"
    key = api_key or os.environ.get("JOBSITE_API_KEY") or ""
    if not key:
        raise errors.AuthenticationError(
            "No API key: pass api_key or set JOBSITE_API_KEY", code="no_api_key"
        )
    return url.rstrip("/"), key


# --- the calls, described once ---------------------------------------------------------------


@contextlib.contextmanager
def _create_call(
    *,
    type: str,
    params: dict[str, Any] | None,
    file: str | Path | BinaryIO | None,
    file_url: str | None,
    collection_id: str | None,
    callback_url: str | None,
    idempotency_key: str | None,
    priority: int | None,
    run_at: str | None,
) -> Iterator[_Call]:
    """``POST /jobs/``: JSON, or multipart when a file goes with it. Hebbrix's shortcuts
    (``file_url``, ``collection_id`` beside ``type``) go into params. A path is opened for
    the upload and closed after it; an open file is the caller's. (httpx reads it from the
    start on each attempt: a retried upload sends it whole.)"""
    merged = dict(params or {})
    if file_url is not None:
        merged["file_url"] = file_url
    if collection_id is not None:
        merged["collection_id"] = str(collection_id)
    headers = {"Idempotency-Key": idempotency_key or f"jsc-{uuid.uuid4()}"}
    extra = {"callback_url": callback_url, "priority": priority, "run_at": run_at}
    extra = {k: v for k, v in extra.items() if v is not None}
    if file is None:
        yield _Call("POST", "/api/v1/jobs/", json={"type": type, "params": merged, **extra},
                    headers=headers)  # fmt: skip
        return
    data = {"type": type, "params": json.dumps(merged), **{k: str(v) for k, v in extra.items()}}
    with contextlib.ExitStack() as stack:
        handle = stack.enter_context(open(file, "rb")) if isinstance(file, (str, Path)) else file
        name = Path(getattr(handle, "name", "upload")).name
        yield _Call("POST", "/api/v1/jobs/", data=data, files={"file": (name, handle)},
                    headers=headers)  # fmt: skip


def _list_call(status: str | None, type: str | None, limit: int) -> _Call:
    return _Call("GET", "/api/v1/jobs/", params={"status": status, "type": type, "limit": limit})


def _poll_call(job_id: str, status: str | None, seconds: float) -> _Call:
    return _Call(
        "GET",
        f"/api/v1/jobs/{job_id}/poll/",
        params={"timeout": round(seconds, 1), "current_status": status},
        timeout=seconds + 15,
    )


def _batch_call(jobs: list[dict[str, Any]], callback_url: str | None, key: str | None) -> _Call:
    body: dict[str, Any] = {"jobs": jobs}
    if callback_url:
        body["callback_url"] = callback_url
    return _Call("POST", "/api/v1/batches/", json=body,
                 headers={"Idempotency-Key": key or f"jsc-{uuid.uuid4()}"})  # fmt: skip


# The server sends a keepalive every 15 s: a stream silent for 60 s is dead (a half-open
# connection after a network change) and is opened again.
_STREAM_TIMEOUT = httpx.Timeout(30.0, read=60.0)


class _Reconnects:
    """When a dropped stream is opened again: at once after a connection that delivered
    something, then after growing waits; never more than ``retries`` times in a row."""

    def __init__(self, job_id: str, retries: int) -> None:
        self.job_id = job_id
        self.retries = retries
        self.failures = 0

    def delivered(self) -> None:
        self.failures = 0

    def dropped(self, reason: object) -> float:
        """Seconds to wait before opening it again; ``ServerError`` when it is time to stop.
        An error answer is raised as it is, unless it asks to come back later (429, 503)."""
        if isinstance(reason, errors.JobsiteError) and reason.status not in RETRY_STATUSES:
            raise reason
        self.failures += 1
        if self.failures > self.retries:
            raise errors.ServerError(
                f"The stream of job {self.job_id} dropped {self.failures} times in a row: {reason}",
                code="unreachable",
            )
        if self.failures == 1:
            return 0.0
        return min(30.0, 0.5 * 2 ** (self.failures - 2)) + random.uniform(0, 0.5)


def _next_page(page: dict[str, Any]) -> _Call | None:
    """The call for the page after ``page`` (its ``next`` link keeps the query)."""
    return _Call("GET", page["next"]) if page.get("next") else None


def _remaining(deadline: float | None) -> float:
    return POLL_SECONDS if deadline is None else min(POLL_SECONDS, deadline - time.monotonic())


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


# --- sync ------------------------------------------------------------------------------------


class Jobsite:
    """The API, blocking. ``Jobsite(base_url, api_key)``, both also from ``JOBSITE_URL``
    and ``JOBSITE_API_KEY``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        url, key = _settings(base_url, api_key)
        self._http = httpx.Client(
            base_url=url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "jobsite-client/0.1"},
            timeout=timeout,
            transport=transport,
        )
        self._retries = retries
        self.jobs = Jobs(self)
        self.batches = Batches(self)
        self.collections = Collections(self)
        self.memories = Memories(self)
        self.webhooks = Webhooks()

    def _response(self, call: _Call) -> httpx.Response:
        for attempt in Retrying(**_retrying_kwargs(self._retries, call.replayable)):
            with attempt:
                response = self._http.request(call.method, call.path, **call.kwargs())
            if not attempt.retry_state.outcome or not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(response)
        return response

    def send(self, call: _Call) -> Any:
        try:
            return _parse(self._response(call))
        except httpx.HTTPError as exc:
            raise errors.ServerError(
                f"No answer from the server: {exc}", code="unreachable"
            ) from exc

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Jobsite:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class Jobs:
    def __init__(self, client: Jobsite) -> None:
        self._client = client

    def create(
        self,
        *,
        type: str,
        params: dict[str, Any] | None = None,
        file: str | Path | BinaryIO | None = None,
        file_url: str | None = None,
        collection_id: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        run_at: str | None = None,
    ) -> Job:
        with _create_call(
            type=type, params=params, file=file, file_url=file_url,
            collection_id=collection_id, callback_url=callback_url,
            idempotency_key=idempotency_key, priority=priority, run_at=run_at,
        ) as call:  # fmt: skip
            return Job.of(self._client.send(call))

    def get(self, job_id: str) -> Job:
        return Job.of(self._client.send(_Call("GET", f"/api/v1/jobs/{job_id}/")))

    def list(
        self, *, status: str | None = None, type: str | None = None, limit: int = 100
    ) -> Iterator[Job]:
        """Every job (of a status, a type), newest first, page after page."""
        call: _Call | None = _list_call(status, type, limit)
        while call is not None:
            page = self._client.send(call)
            yield from (Job.of(raw) for raw in page["results"])
            call = _next_page(page)

    def cancel(self, job_id: str) -> Job:
        body = self._client.send(_Call("POST", f"/api/v1/jobs/{job_id}/cancel/"))
        return Job.of(body.get("job", body))

    def restart(self, job_id: str) -> Job:
        body = self._client.send(_Call("POST", f"/api/v1/jobs/{job_id}/restart/"))
        return Job.of(body.get("job", body))

    def events(self, job_id: str) -> list[dict[str, Any]]:
        body = self._client.send(_Call("GET", f"/api/v1/jobs/{job_id}/events/"))
        return body["results"] if isinstance(body, dict) else body

    def wait(self, job_id: str, timeout: float | None = None) -> Job:
        """The job once it has ended, by long-polling (each poll returns as soon as the
        status changes); ``WaitTimeout`` after ``timeout`` seconds."""
        deadline = _deadline(timeout)
        job = self.get(job_id)
        while not job.done:
            seconds = _remaining(deadline)
            if seconds <= 0:
                raise errors.WaitTimeout(f"Job {job_id} is still {job.status}", job)
            job = Job.of(self._client.send(_poll_call(job_id, job.status, max(1.0, seconds))))
        return job

    def stream(self, job_id: str) -> Iterator[dict[str, Any]]:
        """Each change of the job as the server sends it (SSE), until it ends; a dropped
        connection is opened again with ``Last-Event-ID``, so no change is missed or
        repeated."""
        last: str | None = None
        reconnects = _Reconnects(job_id, self._client._retries)
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            reason: object = "the server ended it before the job ended"
            try:
                with connect_sse(
                    self._client._http, "GET", f"/api/v1/jobs/{job_id}/stream/",
                    headers=headers, timeout=_STREAM_TIMEOUT,
                ) as source:  # fmt: skip
                    if not source.response.is_success:
                        source.response.read()
                        _parse(source.response)
                    for event in source.iter_sse():
                        last = event.id or last
                        if not event.data:  # the opening ``retry:`` line, a keepalive
                            continue
                        reconnects.delivered()
                        state = event.json()
                        yield state
                        if state.get("status") in TERMINAL:
                            return
            except (*_TRANSPORT, errors.JobsiteError) as exc:
                reason = exc
            # Dropped, or ended early (a web process restarting): resume after the last
            # event seen.
            time.sleep(reconnects.dropped(reason))


class Batches:
    def __init__(self, client: Jobsite) -> None:
        self._client = client

    def create(
        self,
        jobs: list[dict[str, Any]],
        *,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
    ) -> Batch:
        return Batch.of(self._client.send(_batch_call(jobs, callback_url, idempotency_key)))

    def get(self, batch_id: str) -> Batch:
        return Batch.of(self._client.send(_Call("GET", f"/api/v1/batches/{batch_id}")))

    def cancel(self, batch_id: str) -> Batch:
        return Batch.of(self._client.send(_Call("POST", f"/api/v1/batches/{batch_id}/cancel")))


class Collections:
    def __init__(self, client: Jobsite) -> None:
        self._client = client

    def create(self, name: str, **fields: Any) -> dict[str, Any]:
        return self._client.send(
            _Call("POST", "/api/v1/collections/", json={"name": name, **fields})
        )

    def get(self, collection_id: str) -> dict[str, Any]:
        return self._client.send(_Call("GET", f"/api/v1/collections/{collection_id}/"))

    def list(self, *, limit: int = 500) -> list[dict[str, Any]]:
        """All your collections, newest first: every page of ``limit``."""
        found: list[dict[str, Any]] = []
        call: _Call | None = _Call("GET", "/api/v1/collections/", params={"limit": limit})
        while call is not None:
            page = self._client.send(call)
            found += page["results"]
            call = _next_page(page)
        return found

    def delete(self, collection_id: str) -> Job | None:
        """None when deleted at once; the job deleting it when it is big."""
        body = self._client.send(_Call("DELETE", f"/api/v1/collections/{collection_id}/"))
        return Job.of(body) if body else None


class Memories:
    def __init__(self, client: Jobsite) -> None:
        self._client = client

    def search(self, q: str, *, collection_id: str | None = None, tag: str | None = None,
               limit: int = 10) -> list[dict[str, Any]]:  # fmt: skip
        params = {"q": q, "collection_id": collection_id, "tag": tag, "limit": limit}
        return self._client.send(_Call("GET", "/api/v1/memories/search", params=params))["results"]


# --- async -----------------------------------------------------------------------------------


class AsyncJobsite:
    """The API, awaited: the same resources and calls as ``Jobsite``."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        retries: int = DEFAULT_RETRIES,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        url, key = _settings(base_url, api_key)
        self._http = httpx.AsyncClient(
            base_url=url,
            headers={"Authorization": f"Bearer {key}", "User-Agent": "jobsite-client/0.1"},
            timeout=timeout,
            transport=transport,
        )
        self._retries = retries
        self.jobs = AsyncJobs(self)
        self.batches = AsyncBatches(self)
        self.collections = AsyncCollections(self)
        self.memories = AsyncMemories(self)
        self.webhooks = Webhooks()

    async def _response(self, call: _Call) -> httpx.Response:
        async for attempt in AsyncRetrying(**_retrying_kwargs(self._retries, call.replayable)):
            with attempt:
                response = await self._http.request(call.method, call.path, **call.kwargs())
            if not attempt.retry_state.outcome or not attempt.retry_state.outcome.failed:
                attempt.retry_state.set_result(response)
        return response

    async def send(self, call: _Call) -> Any:
        try:
            return _parse(await self._response(call))
        except httpx.HTTPError as exc:
            raise errors.ServerError(
                f"No answer from the server: {exc}", code="unreachable"
            ) from exc

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncJobsite:
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.close()


class AsyncJobs:
    def __init__(self, client: AsyncJobsite) -> None:
        self._client = client

    async def create(
        self,
        *,
        type: str,
        params: dict[str, Any] | None = None,
        file: str | Path | BinaryIO | None = None,
        file_url: str | None = None,
        collection_id: str | None = None,
        callback_url: str | None = None,
        idempotency_key: str | None = None,
        priority: int | None = None,
        run_at: str | None = None,
    ) -> Job:
        with _create_call(
            type=type, params=params, file=file, file_url=file_url,
            collection_id=collection_id, callback_url=callback_url,
            idempotency_key=idempotency_key, priority=priority, run_at=run_at,
        ) as call:  # fmt: skip
            return Job.of(await self._client.send(call))

    async def get(self, job_id: str) -> Job:
        return Job.of(await self._client.send(_Call("GET", f"/api/v1/jobs/{job_id}/")))

    async def list(self, *, status: str | None = None, type: str | None = None,
                   limit: int = 100) -> AsyncIterator[Job]:  # fmt: skip
        call: _Call | None = _list_call(status, type, limit)
        while call is not None:
            page = await self._client.send(call)
            for raw in page["results"]:
                yield Job.of(raw)
            call = _next_page(page)

    async def cancel(self, job_id: str) -> Job:
        body = await self._client.send(_Call("POST", f"/api/v1/jobs/{job_id}/cancel/"))
        return Job.of(body.get("job", body))

    async def restart(self, job_id: str) -> Job:
        body = await self._client.send(_Call("POST", f"/api/v1/jobs/{job_id}/restart/"))
        return Job.of(body.get("job", body))

    async def events(self, job_id: str) -> list[dict[str, Any]]:
        body = await self._client.send(_Call("GET", f"/api/v1/jobs/{job_id}/events/"))
        return body["results"] if isinstance(body, dict) else body

    async def wait(self, job_id: str, timeout: float | None = None) -> Job:
        deadline = _deadline(timeout)
        job = await self.get(job_id)
        while not job.done:
            seconds = _remaining(deadline)
            if seconds <= 0:
                raise errors.WaitTimeout(f"Job {job_id} is still {job.status}", job)
            raw = await self._client.send(_poll_call(job_id, job.status, max(1.0, seconds)))
            job = Job.of(raw)
        return job

    async def stream(self, job_id: str) -> AsyncIterator[dict[str, Any]]:
        last: str | None = None
        reconnects = _Reconnects(job_id, self._client._retries)
        while True:
            headers = {"Last-Event-ID": last} if last else {}
            reason: object = "the server ended it before the job ended"
            try:
                async with aconnect_sse(
                    self._client._http, "GET", f"/api/v1/jobs/{job_id}/stream/",
                    headers=headers, timeout=_STREAM_TIMEOUT,
                ) as source:  # fmt: skip
                    if not source.response.is_success:
                        await source.response.aread()
                        _parse(source.response)
                    async for event in source.aiter_sse():
                        last = event.id or last
                        if not event.data:
                            continue
                        reconnects.delivered()
                        state = event.json()
                        yield state
                        if state.get("status") in TERMINAL:
                            return
            except (*_TRANSPORT, errors.JobsiteError) as exc:
                reason = exc
            await asyncio.sleep(reconnects.dropped(reason))


class AsyncBatches:
    def __init__(self, client: AsyncJobsite) -> None:
        self._client = client

    async def create(self, jobs: list[dict[str, Any]], *, callback_url: str | None = None,
                     idempotency_key: str | None = None) -> Batch:  # fmt: skip
        return Batch.of(await self._client.send(_batch_call(jobs, callback_url, idempotency_key)))

    async def get(self, batch_id: str) -> Batch:
        return Batch.of(await self._client.send(_Call("GET", f"/api/v1/batches/{batch_id}")))

    async def cancel(self, batch_id: str) -> Batch:
        call = _Call("POST", f"/api/v1/batches/{batch_id}/cancel")
        return Batch.of(await self._client.send(call))


class AsyncCollections:
    def __init__(self, client: AsyncJobsite) -> None:
        self._client = client

    async def create(self, name: str, **fields: Any) -> dict[str, Any]:
        call = _Call("POST", "/api/v1/collections/", json={"name": name, **fields})
        return await self._client.send(call)

    async def get(self, collection_id: str) -> dict[str, Any]:
        return await self._client.send(_Call("GET", f"/api/v1/collections/{collection_id}/"))

    async def list(self, *, limit: int = 500) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        call: _Call | None = _Call("GET", "/api/v1/collections/", params={"limit": limit})
        while call is not None:
            page = await self._client.send(call)
            found += page["results"]
            call = _next_page(page)
        return found

    async def delete(self, collection_id: str) -> Job | None:
        body = await self._client.send(_Call("DELETE", f"/api/v1/collections/{collection_id}/"))
        return Job.of(body) if body else None


class AsyncMemories:
    def __init__(self, client: AsyncJobsite) -> None:
        self._client = client

    async def search(self, q: str, *, collection_id: str | None = None, tag: str | None = None,
                     limit: int = 10) -> list[dict[str, Any]]:  # fmt: skip
        params = {"q": q, "collection_id": collection_id, "tag": tag, "limit": limit}
        call = _Call("GET", "/api/v1/memories/search", params=params)
        return (await self._client.send(call))["results"]
