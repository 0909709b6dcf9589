"""Request bodies are received in full, in the event loop, before a thread takes the
request.

The REST API and the admin run as WSGI on a few threads (``jobsite/asgi.py``). A WSGI
app reads its body from a blocking stream, so a client that sends ``Content-Length: 1000``
and then one byte held a thread until it gave up: four such clients stopped the API for
everyone. Here the body is read as it arrives, with deadlines (no gap longer than
``JOBSITE_BODY_IDLE_TIMEOUT``, and ``JOBSITE_BODY_MIN_RATE`` bytes per second on average
after a grace period) and a size cap (``JOBSITE_MAX_JSON_BYTES``, or
``JOBSITE_MAX_UPLOAD_BYTES`` for a multipart upload), into memory or, past 1 MB, a
temporary file. Only then is the app called, with the body replayed and its exact
``Content-Length``: a chunked body (``Transfer-Encoding: chunked``) arrives like any other.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import Awaitable, Callable
from typing import Any

from django.conf import settings

from jobs.api.middleware import body_limit

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

IN_MEMORY_MAX = 1024 * 1024  # larger bodies wait in a temporary file
REPLAY_CHUNK = 256 * 1024
GRACE_S = 10.0  # before the minimum rate applies: a slow start is not an attack


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


def declared_length(headers: dict[bytes, bytes]) -> tuple[int | None, bool]:
    """The body's declared length (None: none declared) and whether it is chunked."""
    chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
    raw = headers.get(b"content-length")
    if raw is None:
        return None, chunked
    if chunked:  # both: a request-smuggling shape (the server's parser refuses it too)
        raise Refused(400, "bad_request", "Content-Length and Transfer-Encoding together")
    if not raw.strip().isdigit():
        raise Refused(400, "bad_request", "Content-Length is not a number")
    return int(raw), chunked


class Body:
    """A received body: bytes in memory, or a temporary file past ``IN_MEMORY_MAX``."""

    def __init__(self) -> None:
        self.size = 0
        self._parts: list[bytes] = []
        self._file: Any = None

    def add(self, data: bytes) -> None:
        self.size += len(data)
        if self._file is None and self.size > IN_MEMORY_MAX:
            self._file = tempfile.TemporaryFile()  # noqa: SIM115  (closed by close())
            self._file.writelines(self._parts)
            self._parts = []
        if self._file is not None:
            self._file.write(data)
        else:
            self._parts.append(data)

    def chunks(self) -> Any:
        if self._file is None:
            yield b"".join(self._parts)
            return
        self._file.seek(0)
        while chunk := self._file.read(REPLAY_CHUNK):
            yield chunk

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        self._parts = []


async def receive_body(receive: Receive, limit: int, declared: int | None) -> Body | None:
    """The whole body within the limits (None: the client went away)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    body = Body()
    try:
        while True:
            elapsed = loop.time() - started
            # The average-rate floor, as a deadline for the bytes received so far.
            rate_deadline = GRACE_S + body.size / settings.JOBSITE_BODY_MIN_RATE - elapsed
            wait = min(settings.JOBSITE_BODY_IDLE_TIMEOUT, max(rate_deadline, 0.0))
            try:
                message = await asyncio.wait_for(receive(), timeout=wait)
            except TimeoutError:
                raise Refused(
                    408, "request_timeout", "The request body arrived too slowly"
                ) from None
            if message["type"] == "http.disconnect":
                body.close()
                return None
            body.add(message.get("body", b""))
            if body.size > limit:
                raise Refused(413, "payload_too_large", f"Request body is over {limit} bytes")
            if declared is not None and body.size > declared:
                raise Refused(400, "bad_request", "The body is longer than its Content-Length")
            if not message.get("more_body", False):
                return body
    except BaseException:
        body.close()
        raise


async def refuse(send: Send, error: Refused) -> None:
    payload = json.dumps({"error": {"code": error.code, "message": error.message}}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


def received_in_full(app: App) -> App:
    """Wrap ``app``: it is called once the request's body has arrived, within limits."""

    async def intake(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        try:
            declared, chunked = declared_length(headers)
            if declared is None and not chunked:
                await app(scope, receive, send)  # no body: nothing to wait for
                return
            limit = body_limit(headers.get(b"content-type", b"").decode("latin-1"))
            if declared is not None and declared > limit:
                raise Refused(413, "payload_too_large", f"Request body is over {limit} bytes")
            body = await receive_body(receive, limit, declared)
        except Refused as error:
            await refuse(send, error)
            return
        if body is None:
            return
        try:
            await app(_with_length(scope, body.size), _replay(body, receive), send)
        finally:
            body.close()

    return intake


def _with_length(scope: Scope, size: int) -> Scope:
    headers = [
        (name, value)
        for name, value in scope["headers"]
        if name not in (b"content-length", b"transfer-encoding")
    ]
    headers.append((b"content-length", str(size).encode()))
    return {**scope, "headers": headers}


def _replay(body: Body, receive: Receive) -> Receive:
    """The body again, as the app asks for it; then what the client does (a disconnect)."""
    chunks = body.chunks()
    pending = next(chunks, b"")
    done = False

    async def replayed() -> Message:
        nonlocal pending, done
        if done:
            return await receive()
        current = pending
        pending = next(chunks, None)
        if pending is None:
            done = True
        return {"type": "http.request", "body": current, "more_body": not done}

    return replayed
