"""Documents: extraction quality, upload-to-searchable time, and search on a big collection.

    python -m bench.documents                      # all three, full sizes
    python -m bench.documents --memories 100000    # a smaller search collection

1. Quality: GeoTopo's whole text against the hand-checked ground truth (Levenshtein ratio),
   raw PDFium text beside ours (``bench.extraction``).
2. Speed: the 117-page GeoTopo book POSTed to the API until its job is ``completed`` with
   its memories stored and searchable, on the embedded default and on PostgreSQL + Redis,
   beside the extractor's own time on the same machine (the floor).
3. Search: two-word queries on one collection of 1,000,000 generated memories on
   PostgreSQL, through the API and as the bare SQL, p50/p95/p99.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.harness import Setup, free_port, machine, percentile
from tests.corpus import require_corpus

# In the corpus (JOBSITE_CORPUS, see tests/corpus.py): the book, its text, a one-page PDF.
GEOTOPO = "pdf/GeoTopo-komprimiert.pdf"
TRUTH = "ground_truth/GeoTopo-book.txt"
SMALL = "pdf/minimal-document.pdf"


def rest_server(setup: Setup) -> str:
    port = free_port()
    setup.gunicorn("rest", port, workers=1)
    return f"http://127.0.0.1:{port}"


def api_key(name: str) -> str:
    from django.contrib.auth import get_user_model

    from jobs.auth import api_key_create

    user, _ = get_user_model().objects.get_or_create(username=name)
    return api_key_create(user=user)[1]


def upload_to_searchable(
    client: httpx.Client, path: Path, query: str | None = "Topologie"
) -> dict[str, Any]:
    """One upload, timed until the job is completed (its memories are committed with it)."""
    from jobs.models import Job

    collection = client.post("/api/v1/collections/", json={"name": f"c{time.time_ns()}"})
    assert collection.status_code == 201, collection.text
    collection_id = collection.json()["id"]
    started = time.perf_counter()
    with path.open("rb") as handle:
        response = client.post(
            "/api/v1/jobs/",
            data={"type": "document_processing", "collection_id": collection_id},
            files={"file": (path.name, handle, "application/pdf")},
        )
    response.raise_for_status()
    job_id = response.json()["job_id"]
    while True:
        job = Job.objects.filter(pk=job_id).values("status", "result", "error_message").get()
        if job["status"] in ("completed", "failed"):
            break
        time.sleep(0.002)
    elapsed = time.perf_counter() - started
    assert job["status"] == "completed", job["error_message"]
    if query:
        hits = client.get(
            "/api/v1/memories/search", params={"q": query, "collection_id": collection_id}
        ).json()["results"]
        assert hits, "nothing searchable after completion"
    return {"total": elapsed, "job": job["result"]["duration"], "result": job["result"]}


def speed(embedded: bool, runs: int) -> dict[str, Any]:
    setup = Setup(embedded=embedded)
    try:
        setup.prepare()
        setup.worker("documents", concurrency=2, queues="documents")
        url = rest_server(setup)
        key = api_key("bench-documents")
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            corpus = require_corpus()
            upload_to_searchable(client, corpus / SMALL, None)  # warm
            timings = [upload_to_searchable(client, corpus / GEOTOPO) for _ in range(runs)]
        result = timings[-1]["result"]
        return {
            "setup": setup.label,
            "runs": runs,
            "upload -> completed, median s": round(
                statistics.median(t["total"] for t in timings), 3
            ),
            "best s": round(min(t["total"] for t in timings), 3),
            "in the worker s": round(statistics.median(t["job"] for t in timings), 3),
            "pages": result["pages"],
            "memories": result["memories_created"],
        }
    finally:
        setup.stop()


FILL_VOCAB = """
CREATE TEMP TABLE vocab AS
SELECT row_number() OVER () AS n, word FROM (
    SELECT DISTINCT lower(w) AS word
    FROM regexp_split_to_table(%s, '[^[:alpha:]]+') AS w
    WHERE length(w) > 2
) words
"""
FILL = """
INSERT INTO processing_memory (
    collection_id, job_id, source, source_type, source_hash, chunk_index, page, position,
    text, content_hash, metadata, tags, importance, access_count, created_at, updated_at)
SELECT %s, NULL, 'generated', 'text', 'bench', g, 1 + g %% 500, '{}',
    -- "0 * g" and "0 * k" keep the draw per word of each row (else it is made once).
    (SELECT string_agg(va.words[1 + floor(power(random(), 2.5) * va.size)::int + 0 * k], ' ')
     FROM generate_series(1, 120 + 0 * g) AS k),
    md5(g::text), '{}', '[]', 0.5, 0, now(), now()
FROM generate_series(%s, %s) AS g,
    (SELECT array_agg(word ORDER BY n) AS words, count(*) AS size FROM vocab) AS va
"""


def fill_memories(collection_id: Any, count: int) -> tuple[float, list[str]]:
    """``count`` memories of ~120 words drawn from GeoTopo's vocabulary (skewed toward its
    first words, so some are common and most are rare, as in real text)."""
    from django.db import connection

    started = time.monotonic()
    with connection.cursor() as cursor:
        cursor.execute(FILL_VOCAB, [(require_corpus() / TRUTH).read_text(encoding="utf-8")])
        batch = 50_000
        for start in range(0, count, batch):
            end = min(count, start + batch) - 1
            cursor.execute(FILL, [collection_id, start, end])
            print(f"  {end + 1:,} memories", flush=True)
        cursor.execute("ANALYZE processing_memory")
        cursor.execute("SELECT word FROM vocab WHERE length(word) > 3 ORDER BY n")
        words = [row[0] for row in cursor.fetchall()]
    return time.monotonic() - started, words


def search_bench(count: int, queries: int) -> list[dict[str, Any]]:
    setup = Setup(embedded=False)
    try:
        setup.prepare()
        from django.contrib.auth import get_user_model

        from processing import search, services

        user = get_user_model().objects.create_user("bench-search")
        collection = services.collection_create(owner=user, name="big")
        fill_s, words = fill_memories(collection.pk, count)
        print(f"  filled in {fill_s:.0f} s", flush=True)
        url = rest_server(setup)
        key = api_key("bench-search")
        rng = random.Random(7)
        common = words[:50]
        mixes = {
            "two words, any": [f"{rng.choice(words)} {rng.choice(words)}" for _ in range(queries)],
            "two common words": [
                f"{rng.choice(common)} {rng.choice(common)}" for _ in range(queries)
            ],
        }
        rows = []
        with httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60
        ) as client:
            for name, qs in mixes.items():
                for q in qs[:20]:  # warm the cache
                    client.get("/api/v1/memories/search", params={"q": q})
                api_times, sql_times, hits = [], [], []
                for q in qs:
                    started = time.perf_counter()
                    body = client.get(
                        "/api/v1/memories/search",
                        params={"q": q, "collection_id": str(collection.pk)},
                    ).json()
                    api_times.append(time.perf_counter() - started)
                    hits.append(body["count"])
                    started = time.perf_counter()
                    search.search(search.parse(q), collection_ids=[collection.pk])
                    sql_times.append(time.perf_counter() - started)
                rows.append(
                    {
                        "queries": f"{name} ({len(qs)})",
                        "memories": f"{count:,}",
                        "API p50 ms": round(1000 * percentile(api_times, 50), 1),
                        "API p95 ms": round(1000 * percentile(api_times, 95), 1),
                        "API p99 ms": round(1000 * percentile(api_times, 99), 1),
                        "SQL p95 ms": round(1000 * percentile(sql_times, 95), 1),
                        "queries with hits": sum(1 for h in hits if h),
                    }
                )
                print(rows[-1], flush=True)
        return rows
    finally:
        setup.stop()


def in_child(part: str, *args: str) -> Any:
    """Run one part in a fresh process: Django is set up once per process, for one
    database, and each part needs its own."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.documents", "--part", part, *args],
        capture_output=True,
        text=True,
        check=False,
    )
    sys.stderr.write(done.stderr[-3000:] if done.returncode else "")
    done.check_returncode()
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--memories", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--skip-search", action="store_true")
    parser.add_argument("--part", choices=["quality", "embedded", "production", "search"])
    args = parser.parse_args()
    require_corpus()  # every part reads it: say so now, not from a child process
    if args.part:
        if args.part == "quality":
            from bench import extraction

            out: Any = extraction.measure()
        elif args.part == "search":
            out = search_bench(args.memories, args.queries)
        else:
            out = speed(args.part == "embedded", args.runs)
        print(json.dumps(out), flush=True)
        return

    quality = in_child("quality")
    print(quality, flush=True)
    speed_rows = [in_child(part, "--runs", str(args.runs)) for part in ("embedded", "production")]
    for row in speed_rows:
        row["floor: PDFium raw text s"] = quality["raw seconds"]
        row["our extraction alone s"] = quality["ours seconds"]
        print(row, flush=True)
    search_rows = (
        []
        if args.skip_search
        else in_child("search", "--memories", str(args.memories), "--queries", str(args.queries))
    )
    body = (
        f"{machine()}\n\n### Quality: GeoTopo against its ground truth (target >= 0.98)\n\n"
        + report.table([quality])
        + "\n\n### Upload to searchable: the 117-page GeoTopo PDF (target < 1 s)\n\n"
        + "One prefork worker (2 processes) on the documents queue, the API under gunicorn; "
        "timed from the POST until the job row says `completed` (memories are committed "
        "before it); the floor is the extractor alone in one process.\n\n"
        + report.table(speed_rows)
    )
    if search_rows:
        body += (
            "\n\n### Search: two-word queries on one big collection, PostgreSQL "
            "(target p95 < 20 ms)\n\n" + report.table(search_rows)
        )
    report.append("Documents", "python -m bench.documents", body)


if __name__ == "__main__":
    main()
