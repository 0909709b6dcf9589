"""One Redis subscription per web process, fanned out to every waiting client.

A watcher is a deque and an ``asyncio.Event``: no thread, no timer, no database
connection, no Redis connection of its own. The hub keeps each watched job's latest state
and its SSE bytes, built once per change however many clients watch the job. One ticker
sends idle streams their keep-alive, spread over time. After a lost subscription (Redis
restarted) every watcher is told to resync from the database: it may have missed changes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
import random
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

from jobs.live.notify import CHANNEL, SEQ_KEY

log = logging.getLogger(__name__)

# Markers in a watcher's queue, beside (seq, state, sse_bytes) changes.
RESYNC = "resync"
KEEPALIVE = "keepalive"


def sse(state: dict[str, Any], seq: int) -> bytes:
    return f"id: {seq}\ndata: {json.dumps(state, default=str)}\n\n".encode()


def visible(state: dict[str, Any]) -> dict[str, Any]:
    """A job's merged state as clients see it: ``error`` only while it is ``failed`` (a
    restart takes it away), no ``last_error`` once cleared (``jobs.errors.error_fields``)."""
    if state.get("status") != "failed":
        state.pop("error", None)
    if "last_error" in state and state["last_error"] is None:
        del state["last_error"]
    return state


class Watcher:
    """What one client waits on: changes of one job, in order."""

    __slots__ = ("events", "gone", "job_id", "quiet_since", "stream", "wake")

    def __init__(self, job_id: str, *, stream: bool, quiet_since: float = 0.0) -> None:
        self.job_id = job_id
        self.stream = stream
        self.gone = False
        # Loop time of the last bytes sent: a stream idle for the keep-alive gets one.
        self.quiet_since = quiet_since
        # A slow client only needs the latest state: old entries fall off.
        self.events: collections.deque[Any] = collections.deque(maxlen=256)
        self.wake = asyncio.Event()

    def push(self, item: Any) -> None:
        self.events.append(item)
        self.wake.set()

    async def next_batch(self) -> list[Any]:
        """What arrived since the last call (waits until something does, or a wake-up)."""
        if not self.events:
            self.wake.clear()
            await self.wake.wait()
        batch = list(self.events)
        self.events.clear()
        return batch


class Hub:
    def __init__(self, url: str, keepalive: float) -> None:
        self.url = url
        self.keepalive = keepalive
        self.watchers: dict[str, set[Watcher]] = {}
        # The latest (seq, state) of each watched job, merged from its changes.
        self.states: dict[str, tuple[int, dict[str, Any]]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._subscribed = asyncio.Event()
        self._client: aioredis.Redis | None = None

    @property
    def count(self) -> int:
        return sum(len(group) for group in self.watchers.values())

    async def start(self) -> None:
        """Start the reader and the ticker on first use; wait briefly for the subscription."""
        if not self._tasks or any(task.done() for task in self._tasks):
            for task in self._tasks:
                task.cancel()
            self._tasks = [
                asyncio.create_task(self._read(), name="jobsite-live-reader"),
                asyncio.create_task(self._tick(), name="jobsite-live-keepalive"),
            ]
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 2)

    @contextlib.contextmanager
    def watch(self, job_id: str, *, stream: bool) -> Iterator[Watcher]:
        # A random phase, so thousands of streams opened together are not all kept alive
        # in the same tick (a burst that would delay every live event behind it).
        now = asyncio.get_running_loop().time()
        watcher = Watcher(job_id, stream=stream, quiet_since=now - random.random() * self.keepalive)
        self.watchers.setdefault(job_id, set()).add(watcher)
        try:
            yield watcher
        finally:
            group = self.watchers.get(job_id)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del self.watchers[job_id]
                    self.states.pop(job_id, None)

    def seed(self, job_id: str, seq: int, state: dict[str, Any]) -> None:
        """A watcher's fresh database read: the job's state as of event ``seq``."""
        # Only the first: later watchers may have read a newer seq while older changes are
        # still on their way, and the earlier watchers need those changes.
        self.states.setdefault(job_id, (seq, state))

    async def current_seq(self, job_id: str) -> int:
        """The job's latest event number (0 if none, or Redis is unreachable)."""
        try:
            value = await self._redis().get(f"{SEQ_KEY}{job_id}")
        except Exception:
            return 0
        return int(value or 0)

    def _redis(self) -> aioredis.Redis:
        if self._client is None:
            self._client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=2, health_check_interval=30
            )
        return self._client

    def dispatch(self, data: bytes) -> None:
        """One message: merge it into the job's state once, render it once, wake watchers."""
        number, _, body = data.partition(b" ")
        try:
            event = json.loads(body)
            job_id = event["job_id"]
            seq = int(number)
        except (ValueError, KeyError, TypeError):
            return
        group = self.watchers.get(job_id)
        if not group:
            return
        known_seq, state = self.states.get(job_id, (0, {}))
        if seq <= known_seq:
            return  # already in the state the watchers started from
        state = visible({**state, **event})
        self.states[job_id] = (seq, state)
        item = (seq, state, sse(state, seq))
        for watcher in group:
            watcher.push(item)

    def _broadcast(self, marker: str) -> None:
        for group in self.watchers.values():
            for watcher in group:
                watcher.push(marker)

    async def _tick(self) -> None:
        """Once a second, a keep-alive to each stream that sent nothing for a while."""
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1)
            due = loop.time() - self.keepalive
            for group in self.watchers.values():
                for watcher in group:
                    if watcher.stream and watcher.quiet_since <= due:
                        watcher.quiet_since = loop.time()
                        watcher.push(KEEPALIVE)

    async def _read(self) -> None:
        delay = 0.1
        lost = False
        while True:
            pubsub = self._redis().pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self._subscribed.set()
                delay = 0.1
                if lost:
                    log.info("Live updates: subscription restored")
                    self.states.clear()
                    self._broadcast(RESYNC)
                    lost = False
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self.dispatch(message["data"])
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._subscribed.clear()
                if not lost:
                    log.warning("Live updates: subscription lost (%s); reconnecting", exc)
                lost = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()


_hub: Hub | None = None


def hub() -> Hub:
    """The process's hub (one per event loop: one per web process under uvicorn)."""
    global _hub
    if _hub is None:
        _hub = Hub(settings.JOBSITE_LIVE_URL, settings.JOBSITE_SSE_KEEPALIVE)
    return _hub
