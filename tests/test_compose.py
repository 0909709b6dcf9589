"""The compose file's workers: every queue has a consumer, and media has its own."""

from __future__ import annotations

import shlex
from pathlib import Path

import yaml

from jobs.queues import ALL_QUEUES, Queue

COMPOSE = Path(__file__).resolve().parent.parent / "docker-compose.yml"


def worker_queues() -> dict[str, set[str]]:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    found = {}
    for name, service in services.items():
        argv = shlex.split(str(service.get("command", "")))
        if argv[:4] == ["celery", "-A", "jobsite", "worker"]:
            found[name] = set(argv[argv.index("-Q") + 1].split(","))
    return found


def test_every_queue_is_consumed_and_media_only_by_its_own_workers():
    queues = worker_queues()
    assert set().union(*queues.values()) == set(ALL_QUEUES)
    assert queues["worker-media"] == {Queue.MEDIA}
    assert all(Queue.MEDIA not in q for name, q in queues.items() if name != "worker-media")
