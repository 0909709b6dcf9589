"""Batch operations on 100,000 memories on PostgreSQL: a tag update and a delete as jobs
(POST to completed, through the API and a real worker), each beside the floor of one
plain SQL statement doing the same to the same rows (no chunks, no checkpoints, no
per-memory accounting), and a search right afterwards. Target: each job under 10 s.

    python -m bench.memory_ops [--memories 100000] [--chunk 5000]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import httpx

from bench import report
from bench.harness import Setup, checkpoint, machine, wait_job

TARGET_S = 10.0
FILL = """
INSERT INTO processing_memory (
    collection_id, job_id, source, source_type, source_hash, chunk_index, page, position,
    text, content_hash, metadata, tags, importance, pinned, access_count, created_at,
    updated_at)
SELECT %s, NULL, 'source-' || (g / 100), 'text', 'hash-' || (g / 100), g %% 100, 1, '{}',
    'memory ' || g || ' about glaciers, moraines and the ' || md5(g::text) || ' valley, '
        || repeat('with ice and meltwater ', 40),
    md5(g::text), '{"lang": "en"}', '["draft"]', 0.5, false, 0, now(), now()
FROM generate_series(1, %s) AS g
"""


CONSOLIDATION_FILL = """
INSERT INTO processing_memory (
    collection_id, job_id, source, source_type, source_hash, chunk_index, page, position,
    text, content_hash, metadata, tags, importance, pinned, access_count, created_at,
    updated_at)
SELECT %(collection)s, NULL, 'source-' || (g / 20), 'text', 'hash-' || (g / 20), g %% 20, 1,
    '{}', t.body, md5(t.body), '{}', '[]',
    CASE WHEN (g / 20) %% 2 = 0 THEN 0.2 ELSE 0.5 END, false, 0,
    now() - CASE WHEN (g / 20) %% 2 = 0 THEN interval '60 days' ELSE interval '0 days' END,
    now()
FROM generate_series(1, %(unique)s) AS g,
LATERAL (
    SELECT string_agg(
        CASE WHEN k %% 8 = 1 THEN 'K' ELSE 'w' END || substr(md5(g || '-' || k), 1, 6)
            || CASE WHEN k %% 8 = 0 THEN '.' ELSE '' END,
        ' ' ORDER BY k) AS body
    FROM generate_series(1, 48) AS k
) AS t
"""
# A near-duplicate of every ninth memory: its last word changed (one of 48).
NEAR_DUPLICATES = """
INSERT INTO processing_memory (
    collection_id, job_id, source, source_type, source_hash, chunk_index, page, position,
    text, content_hash, metadata, tags, importance, pinned, access_count, created_at,
    updated_at)
SELECT collection_id, NULL, 'copy-' || id, 'text', 'copy-' || id, 0, 1, '{}',
    regexp_replace(text, '\\S+$', 'changed.'), md5(regexp_replace(text, '\\S+$', 'changed.')),
    '{}', '[]', 0.5, false, 0, now(), now()
FROM processing_memory WHERE collection_id = %(collection)s AND id %% 9 = 0
LIMIT %(copies)s
"""


def fill_for_consolidation(collection_id: Any, count: int) -> dict[str, int]:
    """``count`` memories: 90% unique in sources of 20 chunks (every other source old and
    unimportant), 10% near-duplicates of others."""
    from django.db import connection

    copies = count // 10
    with connection.cursor() as cursor:
        cursor.execute(
            CONSOLIDATION_FILL, {"collection": str(collection_id), "unique": count - copies}
        )
        cursor.execute(NEAR_DUPLICATES, {"collection": str(collection_id), "copies": copies})
        cursor.execute("VACUUM ANALYZE processing_memory")
    checkpoint()
    return {"unique": count - copies, "near duplicates": copies}


def fill(collection_id: Any, count: int) -> float:
    from django.db import connection

    started = time.perf_counter()
    with connection.cursor() as cursor:
        cursor.execute(FILL, [str(collection_id), count])
        cursor.execute("VACUUM ANALYZE processing_memory")
    checkpoint()
    return time.perf_counter() - started


def timed_job(
    client: httpx.Client, job_type: str, params: dict[str, Any]
) -> tuple[float, dict[str, Any]]:
    """POST to completed: the seconds, and the job's result."""
    started = time.perf_counter()
    response = client.post("/api/v1/jobs/", json={"type": job_type, "params": params})
    response.raise_for_status()
    job = wait_job(response.json()["job_id"], poll=0.02)
    return time.perf_counter() - started, job["result"]


def timed_sql(statement: str, params: list[Any]) -> float:
    from django.db import connection, transaction

    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement, params)
    return time.perf_counter() - started


def hits(client: httpx.Client, **params: Any) -> int:
    response = client.get("/api/v1/memories/search", params={"limit": 50, **params})
    response.raise_for_status()
    return response.json()["count"]


def run(count: int, chunk: int, consolidate: bool = True) -> dict[str, Any]:
    setup = Setup(embedded=False)
    try:
        setup.prepare()
        from bench.documents import api_key, rest_server

        setup.worker("worker", concurrency=2, queues="default")
        url = rest_server(setup)
        key = api_key("bench-memory-ops")
        from django.contrib.auth import get_user_model

        from processing import services

        owner = get_user_model().objects.get(username="bench-memory-ops")
        collection = services.collection_create(owner=owner, name="bench")
        floor_collection = services.collection_create(owner=owner, name="floor")
        cid, fid = str(collection.pk), str(floor_collection.pk)
        out: dict[str, Any] = {"machine": machine(), "memories": count}
        out["fill s"] = round(fill(collection.pk, count) + fill(floor_collection.pk, count), 1)
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
        ) as client:
            params = {
                "operation": "update",
                "filter": {"collection_id": cid},
                "changes": {"remove_tags": ["draft"], "add_tags": ["reviewed"]},
                "chunk_size": chunk,
            }
            out["update job s"], result = timed_job(client, "batch_operation", params)
            assert result["changed"] == count, result
            out["update chunks"] = result["chunks"]
            out["update floor s"] = timed_sql(
                "UPDATE processing_memory SET tags = '[\"reviewed\"]'::jsonb, updated_at = now() "
                "WHERE collection_id = %s",
                [fid],
            )
            started = time.perf_counter()
            out["search after update: hits (of 50)"] = hits(
                client, q="glaciers", collection_id=cid, tag="reviewed"
            )
            out["search after update: draft hits"] = hits(
                client, q="glaciers", collection_id=cid, tag="draft"
            )
            out["search after update s"] = time.perf_counter() - started
            checkpoint()
            params = {"operation": "delete", "filter": {"collection_id": cid}, "chunk_size": chunk}
            out["delete job s"], result = timed_job(client, "batch_operation", params)
            assert result["changed"] == count, result
            out["delete floor s"] = timed_sql(
                "DELETE FROM processing_memory WHERE collection_id = %s", [fid]
            )
            out["search after delete: hits"] = hits(client, q="glaciers")

            if not consolidate:
                return out
            consolidated = services.collection_create(owner=owner, name="consolidate")
            out["consolidation fill"] = fill_for_consolidation(consolidated.pk, count)
            params = {"collection_id": str(consolidated.pk)}
            out["consolidation s"], out["consolidation"] = timed_job(
                client, "memory_consolidation", params
            )
            out["second run s"], out["second run"] = timed_job(
                client, "memory_consolidation", params
            )
        return out
    finally:
        setup.stop()


def _consolidation_row(run: str, seconds: float, result: dict[str, Any]) -> dict[str, Any]:
    return {
        "run": run,
        "seconds": round(seconds, 1),
        "memories": f"{result['memories_before']:,} -> {result['memories_after']:,}",
        "text bytes": f"{result['bytes_before']:,} -> {result['bytes_after']:,}",
        "merged": result["merged"],
        "summaries (of memories)": f"{result['summaries']:,} ({result['summarised']:,})",
        "archive bytes": f"{result['archive_bytes']:,}",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--memories", type=int, default=100_000)
    parser.add_argument("--chunk", type=int, default=5_000)
    parser.add_argument("--skip-consolidation", action="store_true")
    args = parser.parse_args()
    out = run(args.memories, args.chunk, not args.skip_consolidation)
    rows = [
        {
            "operation": f"update the tags of {args.memories:,}",
            "job s (POST -> completed)": round(out["update job s"], 2),
            "floor: one SQL statement s": round(out["update floor s"], 2),
            "chunks": out["update chunks"],
            "target": f"< {TARGET_S:.0f} s",
        },
        {
            "operation": f"delete {args.memories:,}",
            "job s (POST -> completed)": round(out["delete job s"], 2),
            "floor: one SQL statement s": round(out["delete floor s"], 2),
            "chunks": out["update chunks"],
            "target": f"< {TARGET_S:.0f} s",
        },
    ]
    print(out["machine"])
    print(report.table(rows))
    searched = (
        f"Right afterwards, search (`glaciers`, tag filter) found "
        f"{out['search after update: hits (of 50)']} of 50 asked for with the new tag and "
        f"{out['search after update: draft hits']} with the removed one "
        f"({out['search after update s'] * 1000:.0f} ms for both); after the delete, "
        f"{out['search after delete: hits']} hits in the deleted collection's words besides "
        "the floor's (deleted too)."
    )
    print(searched)
    if "consolidation" not in out:
        return
    consolidation_rows = [
        _consolidation_row("first", out["consolidation s"], out["consolidation"]),
        _consolidation_row("second (nothing left)", out["second run s"], out["second run"]),
    ]
    fill_note = out["consolidation fill"]
    print(report.table(consolidation_rows))
    report.append(
        "Consolidating 100,000 memories",
        "python -m bench.memory_ops",
        f"{out['machine']}; {fill_note['unique']:,} generated memories of 48 words in sources "
        "of 20 chunks (every other source 60 days old with importance 0.2) and "
        f"{fill_note['near duplicates']:,} near-duplicates (one word of 48 changed); "
        "defaults (similarity 0.85, 30 days, importance 0.5, ratio 0.3).\n\n"
        + report.table(consolidation_rows),
    )
    report.append(
        "Batch operations on 100,000 memories",
        "python -m bench.memory_ops",
        f"{out['machine']}; PostgreSQL + Redis; chunks of {args.chunk:,} memories, one "
        "transaction and one checkpoint each.\n\n" + report.table(rows) + "\n\n" + searched,
    )


if __name__ == "__main__":
    main()
