"""Access counts of memories, kept off the read path.

A search hit or a ``GET`` adds one to a Redis hash (one round trip for all hits); a
periodic task folds the hash into the table in one UPDATE per distinct count. Counting in
the row on every read rewrote the row (its text and search vector with it): 4 ms per
search of ten hits on a million memories, and bloat. Counts reach the table within
``JOBSITE_ACCESS_FLUSH_INTERVAL`` seconds; consolidation reads them there.
"""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Sequence

import redis
from django.conf import settings
from django.db.models import F
from django.utils import timezone

from processing.models import Memory

KEY = "jobsite:memory-access"
_client: redis.Redis | None = None
_lock = threading.Lock()


def _redis() -> redis.Redis:
    global _client
    with _lock:
        if _client is None:
            _client = redis.Redis.from_url(settings.CACHE_URL)
        return _client


def record(ids: Sequence[int]) -> None:
    """Count one access to each memory (best effort: a Redis blip loses a count, never a
    request)."""
    if not ids:
        return
    try:
        pipe = _redis().pipeline(transaction=False)
        for memory_id in ids:
            pipe.hincrby(KEY, str(memory_id), 1)
        pipe.execute()
    except redis.RedisError:
        pass


def flush() -> int:
    """Fold the pending counts into the table; returns how many memories were touched."""
    client = _redis()
    taking = f"{KEY}:flushing"
    try:
        client.rename(KEY, taking)
    except redis.ResponseError:  # no key: nothing was read since the last flush
        if not client.exists(taking):
            return 0
    counts = client.hgetall(taking)
    by_count: dict[int, list[int]] = defaultdict(list)
    for memory_id, count in counts.items():
        by_count[int(count)].append(int(memory_id))
    now = timezone.now()
    for count, ids in by_count.items():
        for start in range(0, len(ids), 1000):
            Memory.objects.filter(pk__in=ids[start : start + 1000]).update(
                access_count=F("access_count") + count, last_accessed_at=now
            )
    client.delete(taking)
    return len(counts)
