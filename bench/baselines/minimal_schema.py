"""The minimal API's two tables (``bench.baselines.minimal_api``), apart from its Django
configuration so the benchmark process can create and fill them."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Any

TABLES = (
    "CREATE TABLE IF NOT EXISTS bench_minimal_key ("
    "prefix VARCHAR(16) PRIMARY KEY, hashed VARCHAR(64) NOT NULL, user_id INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS bench_minimal_job ("
    "id VARCHAR(36) PRIMARY KEY, owner_id INTEGER NOT NULL, type VARCHAR(200) NOT NULL, "
    "params TEXT NOT NULL, status VARCHAR(16) NOT NULL, result TEXT, created_at VARCHAR(40))",
)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def fill(cursor: Any, jobs: int, user_id: int = 1) -> tuple[str, list[str]]:
    """A key and ``jobs`` completed rows: the same fixtures the Jobsite run gets."""
    for statement in TABLES:
        cursor.execute(statement)
    prefix, secret = secrets.token_hex(4), secrets.token_urlsafe(24)
    key = f"mk_{prefix}.{secret}"
    cursor.execute(
        "INSERT INTO bench_minimal_key (prefix, hashed, user_id) VALUES (%s, %s, %s)",
        [prefix, hash_key(key), user_id],
    )
    ids = [str(uuid.uuid4()) for _ in range(jobs)]
    cursor.executemany(
        "INSERT INTO bench_minimal_job (id, owner_id, type, params, status, result, created_at) "
        "VALUES (%s, %s, 'echo', '{}', 'completed', %s, '2026-01-01T00:00:00.000000Z')",
        [[job_id, user_id, f'{{"n": {n}}}'] for n, job_id in enumerate(ids)],
    )
    return key, ids
