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
import queue
import threading
import time
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone
from redis.exceptions import NoScriptError

log = logging.getLogger(__name__)

CHANNEL = "jobsite:live:jobs"
SEQ_KEY = "jobsite:live:seq:"
# Results larger than this are not sent to watchers (they GET the job instead).
RESULT_INLINE_MAX = 16 * 1024
# A job's sequence number outlives its last update by two days (resume after that: resync).
_SEQ_TTL = 86400 * 2

# INCR the job's sequence and PUBLISH "<seq> <json>" atomically, so the numbers on the
# channel are in publish order.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], seq .. ' ' .. ARGV[2])
return seq
"""


class _Sender(threading.Thread):
    """Publishes queued updates in the background, so a job's write never waits on Redis
    (in a worker the two publishes per job cost more than its two database writes), and a
    burst goes out as one pipeline. Per process; updates keep their order."""

    BATCH = 256

    def __init__(self) -> None:
        super().__init__(name="jobsite-live-sender", daemon=True)
        self.queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self.client = redis.Redis.from_url(
            settings.JOBSITE_LIVE_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        self.sha = self.client.register_script(_PUBLISH).sha

    def run(self) -> None:
        while True:
            batch = [self.queue.get()]
            # Linger a moment: a short job's start and end then go out in one pipeline.
            time.sleep(settings.JOBSITE_LIVE_LINGER)
            while len(batch) < self.BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            updates = [item for item in batch if not isinstance(item, threading.Event)]
            try:
                self._send(updates)
            except Exception as exc:  # Redis down: watchers resync from the database
                log.debug("%d live updates not published: %s", len(updates), exc)
            for item in batch:
                if isinstance(item, threading.Event):
                    item.set()

    def _send(self, updates: list[tuple[str, str]], *, reload: bool = True) -> None:
        if not updates:
            return
        pipe = self.client.pipeline(transaction=False)
        for key, body in updates:
            pipe.evalsha(self.sha, 1, key, CHANNEL, body, _SEQ_TTL)
        replies = pipe.execute(raise_on_error=False)
        if reload and any(isinstance(reply, NoScriptError) for reply in replies):
            # A restarted (or new) Redis has no scripts yet: load it, send again.
            self.client.script_load(_PUBLISH)
            again = [
                u for u, r in zip(updates, replies, strict=True) if isinstance(r, NoScriptError)
            ]
            self._send(again, reload=False)

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued so far has been sent (or dropped)."""
        done = threading.Event()
        self.queue.put(done)
        return done.wait(timeout)


_sender: _Sender | None = None
_sender_pid: int | None = None
_sender_guard = threading.Lock()


def _current_sender() -> _Sender:
    """This process's sender, started on first use (after any fork)."""
    global _sender, _sender_pid
    if _sender is not None and _sender_pid == os.getpid():
        return _sender
    with _sender_guard:
        if _sender is None or _sender_pid != os.getpid():
            _sender = _Sender()
            _sender_pid = os.getpid()
            _sender.start()
    return _sender


@atexit.register
def flush(timeout: float = 1.0) -> None:
    """Send what is queued (a short-lived process would otherwise drop its last updates)."""
    if _sender is not None and _sender_pid == os.getpid() and _sender.is_alive():
        _sender.flush(timeout)


def notify(job_id: Any, *, at: float | None = None, **fields: Any) -> None:
    """Tell watchers of ``job_id`` what changed (only the fields that did), and when
    (``at``, epoch seconds; now by default). Returns at once: the update is sent by this
    process's sender thread."""
    moment = datetime.fromtimestamp(at, UTC) if at is not None else timezone.now()
    event = {"job_id": str(job_id), "timestamp": moment.isoformat(), **fields}
    try:
        body = json.dumps(event, default=str, separators=(",", ":"))
    except (TypeError, ValueError) as exc:  # a weird value: watchers resync from the DB
        log.debug("Live update for job %s not published: %s", job_id, exc)
        return
    _current_sender().queue.put((f"{SEQ_KEY}{job_id}", body))


def live_fields(fields: dict[str, Any]) -> dict[str, Any]:
    """The parts of a job write that watchers see, from the columns it set."""
    out: dict[str, Any] = {}
    for name in ("progress", "current_step", "attempts", "next_retry_at"):
        if name in fields:
            out[name] = fields[name]
    if fields.get("error_code"):
        out["error"] = {"code": fields["error_code"], "message": fields.get("error_message", "")}
    if "result" in fields:
        text = json.dumps(fields["result"], default=str)
        if len(text) <= RESULT_INLINE_MAX:
            out["result"] = fields["result"]
        else:
            out["result_truncated"] = True
    return out
