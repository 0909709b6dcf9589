"""The publishing side: every job write that a watcher may care about becomes one pub/sub
message on one channel, numbered per job so streams can resume (``Last-Event-ID``).

A failed publish never fails the write it reports: watchers fall back to the state they
read from the database, and the next change carries the full picture again.
"""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.utils import timezone

log = logging.getLogger(__name__)

CHANNEL = "jobsite:live:jobs"
SEQ_KEY = "jobsite:live:seq:"
# Results larger than this are not sent to watchers (they GET the job instead).
RESULT_INLINE_MAX = 16 * 1024

# INCR the job's sequence and PUBLISH "<seq> <json>" atomically, so the numbers on the
# channel are in publish order.
_PUBLISH = """
local seq = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
redis.call('PUBLISH', ARGV[1], seq .. ' ' .. ARGV[2])
return seq
"""

_local = threading.local()


def _script() -> Any:
    script = getattr(_local, "script", None)
    if script is None:
        client = redis.Redis.from_url(
            settings.JOBSITE_LIVE_URL, socket_timeout=0.5, socket_connect_timeout=0.5
        )
        script = _local.script = client.register_script(_PUBLISH)
    return script


def notify(job_id: Any, *, at: float | None = None, **fields: Any) -> None:
    """Tell watchers of ``job_id`` what changed (only the fields that did), and when
    (``at``, epoch seconds; now by default)."""
    moment = datetime.fromtimestamp(at, UTC) if at is not None else timezone.now()
    event = {"job_id": str(job_id), "timestamp": moment.isoformat(), **fields}
    try:
        body = json.dumps(event, default=str, separators=(",", ":"))
        _script()(keys=[f"{SEQ_KEY}{job_id}"], args=[CHANNEL, body, 86400 * 2])
    except Exception as exc:  # Redis down or a weird value: watchers resync from the DB
        log.debug("Live update for job %s not published: %s", job_id, exc)


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
