"""The publishing side: every job write that a watcher may care about becomes one pub/sub
message on one channel, numbered per job so streams can resume (``Last-Event-ID``).

A failed publish never fails the write it reports: watchers fall back to the state they
read from the database, and the next change carries the full picture again.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

from jobs.errors import error_fields
from jobs.timestamps import iso

log = logging.getLogger(__name__)

CHANNEL = "jobsite:live:jobs"
SEQ_KEY = "jobsite:live:seq:"
# The publisher's connection, as CLIENT LIST names it (one per process).
CLIENT_NAME = "jobsite-live:{pid}"
# Results larger than this are not sent to watchers (they GET the job instead).
RESULT_INLINE_MAX = 16 * 1024
# A job's sequence number outlives its last update by two days (resume after that: resync).
_SEQ_TTL = 86400 * 2
# After a failed publish, updates are dropped (not waited on) for this long.
_RETRY_AFTER = 1.0
# Replies read back at once when this many are outstanding (or on flush).
_UNREAD_MAX = 64

# INCR the job's sequence and PUBLISH "<seq> <json>" atomically, so the numbers on the
# channel are in publish order. EVAL, not EVALSHA: a restarted Redis needs no reload.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], seq .. ' ' .. ARGV[2])
return seq
"""


class _Publisher:
    """One Redis connection per process, written to without waiting for the reply.

    A publish is one socket write in the caller's thread; the replies are read back later,
    a batch at a time. Not a background sender thread: in a worker running short jobs, a
    thread's wake-ups and GIL hand-offs cost the pool more CPU than the jobs' database
    writes (0.3 ms per job in the throughput benchmark).
    """

    def __init__(self) -> None:
        self.connection = redis.ConnectionPool.from_url(
            settings.JOBSITE_LIVE_URL,
            socket_timeout=0.5,
            socket_connect_timeout=0.5,
            client_name=CLIENT_NAME.format(pid=os.getpid()),
        ).make_connection()
        self.lock = threading.Lock()
        self.unread = 0
        self.down_until = 0.0

    def publish(self, key: str, body: str) -> None:
        with self.lock:
            if time.monotonic() < self.down_until:
                return  # Redis failed us a moment ago: watchers resync from the database
            self._collect()
            try:
                command = self.connection.pack_command(
                    "EVAL", _PUBLISH, 1, key, CHANNEL, body, _SEQ_TTL
                )
                self.connection.send_packed_command(command, check_health=False)
                self.unread += 1
            except (redis.RedisError, OSError) as exc:
                self._failed(exc)

    def _collect(self) -> None:
        """Read the replies that have arrived, without waiting. A connection that Redis
        closed (a restart) reads as readable too: it is dropped here, so the next write
        goes out on a new one instead of into a dead socket."""
        connection = self.connection
        if connection._sock is None:
            return
        try:
            if self.unread >= _UNREAD_MAX or connection.can_read(0):
                if self.unread:
                    self._read_replies(deadline=time.monotonic())
                else:  # nothing is owed: what is readable is the close
                    connection.read_response(disable_decoding=True)
        except (redis.RedisError, OSError) as exc:
            self._failed(exc, retry_after=0.0)  # closed under us: reconnect at once

    def flush(self, timeout: float) -> bool:
        """Wait until Redis has run every update sent so far (or give up)."""
        with self.lock:
            try:
                self._read_replies(deadline=time.monotonic() + timeout)
            except (redis.RedisError, OSError) as exc:
                self._failed(exc)
            return self.unread == 0

    def _read_replies(self, deadline: float) -> None:
        while self.unread:
            wait = max(0.0, deadline - time.monotonic())
            if not self.connection.can_read(wait):
                if self.unread >= 16 * _UNREAD_MAX:  # Redis stopped answering
                    raise redis.ConnectionError(f"{self.unread} live updates unanswered")
                return
            try:
                self.connection.read_response(disable_decoding=True)
            except redis.ResponseError as exc:  # this update only (say, Redis out of memory)
                log.warning("A live update was not published: %s", exc)
            self.unread -= 1

    def _failed(self, exc: BaseException, retry_after: float = _RETRY_AFTER) -> None:
        log.debug("Live updates connection lost (%d unconfirmed): %s", self.unread, exc)
        self.connection.disconnect()
        self.unread = 0
        self.down_until = time.monotonic() + retry_after


_publisher: _Publisher | None = None
_publisher_pid: int | None = None
_publisher_guard = threading.Lock()


def _current_publisher() -> _Publisher:
    """This process's publisher, made on first use (after any fork: never the parent's
    socket)."""
    global _publisher, _publisher_pid
    if _publisher is not None and _publisher_pid == os.getpid():
        return _publisher
    with _publisher_guard:
        if _publisher is None or _publisher_pid != os.getpid():
            _publisher = _Publisher()
            _publisher_pid = os.getpid()
    return _publisher


@atexit.register
def flush(timeout: float = 1.0) -> bool:
    """Wait until Redis has run the updates this process sent (False: it has not, in
    ``timeout`` seconds). Updates are sent as they happen; this confirms them."""
    if _publisher is not None and _publisher_pid == os.getpid():
        return _publisher.flush(timeout)
    return True


def notify(job_id: Any, *, at: float | None = None, **fields: Any) -> None:
    """Tell watchers of ``job_id`` what changed (only the fields that did), and when
    (``at``, epoch seconds; now by default). Returns at once: one socket write, no wait
    for Redis."""
    moment = datetime.fromtimestamp(at, UTC) if at is not None else timezone.now()
    event = {"job_id": str(job_id), "timestamp": iso(moment), **fields}
    try:
        body = json.dumps(event, default=str, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:  # a weird value: watchers resync from the DB
        log.debug("Live update for job %s not published: %s", job_id, exc)
        return
    _current_publisher().publish(f"{SEQ_KEY}{job_id}", body)


def live_fields(fields: dict[str, Any], status: str) -> dict[str, Any]:
    """The parts of a write that moved a job to ``status`` that watchers see, from the
    columns it set."""
    out: dict[str, Any] = {}
    for name in ("progress", "current_step", "attempts"):
        if name in fields:
            out[name] = fields[name]
    if "next_retry_at" in fields:
        out["next_retry_at"] = iso(fields["next_retry_at"])
    if "error_code" in fields:
        # A cleared error (completion, restart) clears the watchers' last_error too.
        out.update(
            error_fields(status, fields["error_code"], fields.get("error_message", ""))
            or {"last_error": None}
        )
    if "result" in fields:
        text = json.dumps(fields["result"], default=str)
        if len(text) <= RESULT_INLINE_MAX:
            out["result"] = fields["result"]
        else:
            out["result_truncated"] = True
    return out
