"""The job core's hot paths in one process, for counts of CPU instructions that machine
noise cannot move (a shared 2-core machine moves the wall-clock benchmarks by 20%).

    valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p python -m bench.hotpaths --n 300

Creates ``n`` jobs (validation, the row and its event, the publish), claims and completes
each (the worker's two writes, as the runner and the signal handler make them), and reads
each through the REST API (middleware, authentication, throttle, the lookup, the JSON).
Run it twice with different ``n`` and subtract: the difference is the cost of the extra
iterations without Django's start-up. Production setup (PostgreSQL + Redis).
"""

from __future__ import annotations

import argparse
import uuid

from bench.harness import Setup


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=300)
    args = parser.parse_args()
    setup = Setup(embedded=False)
    try:
        setup.prepare()
        run(args.n)
    finally:
        setup.stop()


def run(n: int) -> None:
    from django.conf import settings
    from django.contrib.auth import get_user_model
    from django.test import Client

    from jobs import services

    try:
        from jobs.auth import api_key_create
    except ImportError:  # before API key services moved to jobs.auth
        from jobs.services import api_key_create

    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "testserver"]
    owner = get_user_model().objects.create_user("bench")
    _, key = api_key_create(user=owner, name="bench")
    client = Client(HTTP_AUTHORIZATION=f"Bearer {key}")
    for _ in range(n):
        job, _ = services.job_create(owner=owner, job_type="echo", params={}, actor="bench")
        task_id = str(uuid.uuid4())
        claimed = services.job_claim(job.pk, task_id=task_id, worker="bench:1")
        assert claimed is not None
        assert services.job_complete(job.pk, task_id=task_id, attempt=1, result={"ok": True})
        response = client.get(f"/api/v1/jobs/{job.pk}/")
        assert response.status_code == 200, response.content


if __name__ == "__main__":
    main()
