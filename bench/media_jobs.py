"""Media jobs end to end on PostgreSQL + Redis: the 32 s corpus video from upload to
completed, two media jobs side by side, and what media jobs cost the other queues.

- Scenes: the video's scene changes against ``austen-scenes.json`` (largest error, scenes
  missing, scenes not there) and, per scene, the share of its reference words found in
  the memories of that scene's time range. Target: every cut within 0.5 s, none extra.
- The whole job (POST of the upload to ``completed``, quality model, worker warm): target
  under 10 s; beside it the same path for an echo job (the platform's floor) and the time
  inside the worker.
- Two media jobs side by side on two single-process media workers, against one at a time.
- Echo and small-document jobs (POST to completed) with the media workers idle, and while
  both are transcribing: the media queue has its own workers, so no job waits behind a
  recording; what is left is the two processes' share of this machine's cores.

    python -m bench.media_jobs [--runs 3] [--probes 30]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

from bench import report
from bench.harness import Setup, machine, percentile, wait_job
from bench.media import normalise
from tests.corpus import require_corpus

VIDEO = "video/austen-scenes.mp4"
SMALL_PDF = "pdf/minimal-document.pdf"
TARGET_S = 10.0


def submit_file(client: httpx.Client, job_type: str, path: Path, collection: str, **params: Any):
    with path.open("rb") as handle:
        response = client.post(
            "/api/v1/jobs/",
            data={
                "type": job_type,
                "collection_id": collection,
                **({"params": json.dumps(params)} if params else {}),
            },
            files={"file": (path.name, handle)},
        )
    response.raise_for_status()
    return response.json()["job_id"]


def timed_file(client: httpx.Client, job_type: str, path: Path, collection: str, **params: Any):
    started = time.perf_counter()
    # A media job takes seconds: polled at 50 ms, so the polling does not load the machine.
    poll = 0.05 if job_type == "media_analysis" else 0.005
    job = wait_job(submit_file(client, job_type, path, collection, **params), poll)
    return time.perf_counter() - started, job


def timed_echo(client: httpx.Client) -> float:
    started = time.perf_counter()
    response = client.post("/api/v1/jobs/", json={"type": "echo", "params": {"payload": 1}})
    response.raise_for_status()
    wait_job(response.json()["job_id"])
    return time.perf_counter() - started


def scene_accuracy(job: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    """Cuts against the reference, and each scene's words in its memories."""
    from processing.models import Memory

    found = [s["start_s"] for s in job["result"]["scenes"]]
    expected = reference["scene_starts_s"]
    matched = [min(expected, key=lambda e, f=f: abs(e - f)) for f in found]
    errors = [abs(f - m) for f, m in zip(found, matched, strict=True)]
    memories = list(Memory.objects.filter(job_id=job["id"]))
    recalls = []
    for scene, words in zip(
        job["result"]["scenes"], reference["transcript_by_scene"], strict=False
    ):
        heard = set(
            normalise(
                " ".join(m.text for m in memories if m.position.get("scene") == scene["scene"])
            )
        )
        wanted = normalise(words)
        recalls.append(sum(w in heard for w in wanted) / len(wanted))
    return {
        "scenes found": len(found),
        "in the reference": len(expected),
        "largest cut error s": round(max(errors), 3),
        "not in the reference": sum(e > 0.5 for e in errors),
        "missed": len(set(expected) - set(matched)),
        "scene words found, lowest": f"{min(recalls):.0%}",
        "per scene": " ".join(f"{r:.0%}" for r in recalls),
    }


def run(runs: int, probes: int, nice: int) -> dict[str, Any]:
    corpus = require_corpus()
    video = corpus / VIDEO
    reference = json.loads(video.with_suffix(".json").read_text())
    setup = Setup(embedded=False)
    try:
        setup.prepare()
        from bench.documents import api_key, rest_server
        from bench.media import concatenated, recordings

        setup.worker("others", concurrency=2, queues="default,documents")
        for n in (1, 2):  # as docker-compose.yml's worker-media runs them
            setup.worker(
                f"media{n}",
                concurrency=1,
                queues="media",
                node=f"media{n}@%h",
                JOBSITE_WORKER_NICE=str(nice),
            )
        url = rest_server(setup)
        key = api_key("bench-media")
        with (
            httpx.Client(
                base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120
            ) as client,
            tempfile.TemporaryDirectory() as scratch,
        ):
            collection = client.post("/api/v1/collections/", json={"name": "media"}).json()["id"]
            long_file, _ = concatenated(recordings(corpus / "audio"), Path(scratch))
            # Warm: each media worker loads the model once (its first job), the others once.
            warm = [submit_file(client, "media_analysis", video, collection) for _ in (1, 2)]
            for job_id in warm:
                wait_job(job_id)
            timed_echo(client)

            alone = [timed_file(client, "media_analysis", video, collection) for _ in range(runs)]
            scenes = scene_accuracy(alone[-1][1], reference)
            echo_floor = statistics.median(timed_echo(client) for _ in range(10))

            side: list[float] = []
            for _ in range(runs):
                times: list[float] = []

                def one(into: list[float] = times) -> None:
                    into.append(timed_file(client, "media_analysis", video, collection)[0])

                threads = [threading.Thread(target=one) for _ in (1, 2)]
                for thread in threads:
                    thread.start()
                for thread in threads:
                    thread.join()
                side += times

            pdf = corpus / SMALL_PDF
            idle_echo = [timed_echo(client) for _ in range(probes)]
            idle_doc = [
                timed_file(client, "document_processing", pdf, collection)[0]
                for _ in range(max(3, probes // 5))
            ]
            # Both media workers busy with the two-minute recording while the probes run.
            busy = [submit_file(client, "media_analysis", long_file, collection) for _ in (1, 2)]
            time.sleep(2.0)  # both are transcribing by now (the model is loaded)
            busy_echo = [timed_echo(client) for _ in range(probes)]
            busy_doc = [
                timed_file(client, "document_processing", pdf, collection)[0]
                for _ in range(max(3, probes // 5))
            ]
            still_running = _running(busy)
            for job_id in busy:
                wait_job(job_id)
        return {
            "machine": machine(),
            "alone": [round(t, 2) for t, _ in alone],
            "in worker": [round(j["result"]["seconds"], 2) for _, j in alone],
            "echo floor": round(echo_floor, 3),
            "side": [round(t, 2) for t in side],
            "scenes": scenes,
            "idle echo": idle_echo,
            "busy echo": busy_echo,
            "idle doc": idle_doc,
            "busy doc": busy_doc,
            "media still running after the probes": still_running,
        }
    finally:
        setup.stop()


def _running(job_ids: list[str]) -> int:
    from jobs.models import Job

    return Job.objects.filter(pk__in=job_ids, status="running").count()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--probes", type=int, default=30)
    parser.add_argument(
        "--nice", type=int, default=10, help="the media workers' JOBSITE_WORKER_NICE"
    )
    args = parser.parse_args()
    out = run(args.runs, args.probes, args.nice)
    ms = 1000
    alone, side = statistics.median(out["alone"]), statistics.median(out["side"])
    whole = [
        {
            "measure": "32 s video, upload -> completed (quality model), median",
            "value": f"{alone:.2f} s",
            "target": f"< {TARGET_S:.0f} s",
            "runs": " ".join(map(str, out["alone"])),
        },
        {
            "measure": "  of which in the worker",
            "value": f"{statistics.median(out['in worker']):.2f} s",
            "target": "",
            "runs": " ".join(map(str, out["in worker"])),
        },
        {
            "measure": "baseline: echo job, POST -> completed, median",
            "value": f"{out['echo floor'] * ms:.0f} ms",
            "target": "",
            "runs": "",
        },
        {
            "measure": "two side by side on two media workers, per job, median",
            "value": f"{side:.2f} s ({side / alone - 1:+.0%} against one at a time)",
            "target": "keeps its speed",
            "runs": " ".join(map(str, out["side"])),
        },
    ]
    others = []
    for name in ("echo", "doc"):
        idle, busy = out[f"idle {name}"], out[f"busy {name}"]
        others.append(
            {
                "job (POST -> completed)": "echo" if name == "echo" else "one-page PDF",
                "media workers": "idle",
                "p50 ms": round(percentile(idle, 50) * ms, 1),
                "p95 ms": round(percentile(idle, 95) * ms, 1),
                "max ms": round(max(idle) * ms, 1),
            }
        )
        others.append(
            {
                "job (POST -> completed)": "echo" if name == "echo" else "one-page PDF",
                "media workers": "both transcribing",
                "p50 ms": round(percentile(busy, 50) * ms, 1),
                "p95 ms": round(percentile(busy, 95) * ms, 1),
                "max ms": round(max(busy) * ms, 1),
            }
        )
    scenes = [out["scenes"]]
    for title, rows in (("scenes", scenes), ("whole job", whole), ("other queues", others)):
        print(f"\n{title}")
        print(report.table(rows))
    running = out["media still running after the probes"]
    print(f"media jobs still running when the probes ended: {running}")
    report.append(
        "Media jobs end to end: the 32 s video, side by side, and the other queues",
        "python -m bench.media_jobs",
        f"{out['machine']}; PostgreSQL + Redis, gunicorn, two media workers (-c 1, "
        f"JOBSITE_WORKER_NICE={args.nice}) and one "
        "worker (-c 2) for default and documents, each job type on its own queue.\n\n"
        "Scenes of `video/austen-scenes.mp4` against `austen-scenes.json`, and each scene's "
        "reference words found in the memories of its time range:\n\n"
        + report.table(scenes)
        + "\n\n"
        + report.table(whole)
        + "\n\nOther jobs with the media workers idle, and while both transcribe the "
        "two-minute recording:\n\n" + report.table(others),
    )


if __name__ == "__main__":
    main()
