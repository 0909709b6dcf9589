"""One Redis subscription per web process, fanned out to every waiting client.

A watcher is a deque and an ``asyncio.Event``: no thread, no database connection, no
per-watcher Redis connection. The reader task parses each message once and wakes the
watchers of that job. After a lost subscription (Redis restarted) every watcher is told
to resync from the database, since it may have missed changes.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import logging
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis
from django.conf import settings

from jobs.live.notify import CHANNEL, SEQ_KEY

log = logging.getLogger(__name__)

RESYNC = -1  # the sequence number of a "you may have missed changes" marker


class Watcher:
    """What one client waits on: changes of one job, in order."""

    __slots__ = ("events", "job_id", "wake")

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id
        # Only the latest state matters to a slow client: old entries fall off.
        self.events: collections.deque[tuple[int, dict[str, Any]]] = collections.deque(maxlen=256)
        self.wake = asyncio.Event()

    def push(self, seq: int, event: dict[str, Any]) -> None:
        self.events.append((seq, event))
        self.wake.set()

    async def next_batch(self, timeout: float) -> list[tuple[int, dict[str, Any]]]:
        """Changes since the last call; empty after ``timeout`` seconds of silence."""
        if not self.events:
            self.wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), timeout)
        batch = list(self.events)
        self.events.clear()
        return batch


class Hub:
    def __init__(self, url: str) -> None:
        self.url = url
        self.watchers: dict[str, set[Watcher]] = {}
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()
        self._client: aioredis.Redis | None = None

    @property
    def count(self) -> int:
        return sum(len(group) for group in self.watchers.values())

    async def start(self) -> None:
        """Start the reader on first use; wait briefly for the subscription."""
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._read(), name="jobsite-live-hub")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._subscribed.wait(), 2)

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[Watcher]:
        watcher = Watcher(job_id)
        self.watchers.setdefault(job_id, set()).add(watcher)
        try:
            yield watcher
        finally:
            group = self.watchers.get(job_id)
            if group is not None:
                group.discard(watcher)
                if not group:
                    del self.watchers[job_id]

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

    def _dispatch(self, data: bytes) -> None:
        seq, _, body = data.partition(b" ")
        try:
            event = json.loads(body)
            group = self.watchers.get(event["job_id"])
        except (ValueError, KeyError, TypeError):
            return
        if group:
            number = int(seq)
            for watcher in group:
                watcher.push(number, event)

    def _resync_all(self) -> None:
        for group in self.watchers.values():
            for watcher in group:
                watcher.push(RESYNC, {})

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
                    self._resync_all()
                    lost = False
                async for message in pubsub.listen():
                    if message["type"] == "message":
                        self._dispatch(message["data"])
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
        _hub = Hub(settings.JOBSITE_LIVE_URL)
    return _hub
