"""The Python client (``client/``) against a live server: the web process as production
runs it and the platform's worker, for every call, sync and async; long-poll waits, a
stream that resumes across a dropped connection, retries on 429 that honour Retry-After,
idempotent creates, webhook verification, and an import that needs no Django."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from jobsite_client import (
    AsyncJobsite,
    InvalidRequest,
    InvalidSignature,
    Jobsite,
    NotFound,
    ServerError,
    WaitTimeout,
)

from processing import services
from processing.chunking import Chunk
from processing.models import Collection
from tests.helpers import WebServer

pytestmark = [pytest.mark.worker]


@pytest.fixture
def client(web, api):
    with Jobsite(web.url, api.api_key) as made:
        yield made


def test_jobs_from_create_to_wait_list_cancel_restart_and_events(client):
    job = client.jobs.create(type="echo", params={"payload": "hi", "duration_s": 0.3, "steps": 3})
    assert job.status == "pending" and job["job_id"] == job.id  # the JSON too, as a mapping
    done = client.jobs.wait(job.id, timeout=30)
    assert done.done and done.status == "completed" and done.result == "hi"
    assert client.jobs.get(job.id).progress == 100.0

    slow = client.jobs.create(type="echo", params={"duration_s": 30, "steps": 30})
    with pytest.raises(WaitTimeout) as waited:
        client.jobs.wait(slow.id, timeout=1.5)
    assert waited.value.job.id == slow.id
    cancelled = client.jobs.cancel(slow.id)
    assert cancelled.id == slow.id
    assert client.jobs.wait(slow.id, timeout=30).status == "cancelled"
    client.jobs.restart(slow.id)
    assert client.jobs.get(slow.id).status in ("pending", "running")
    client.jobs.cancel(slow.id)
    kinds = [(e["from_status"], e["to_status"]) for e in client.jobs.events(slow.id)]
    assert kinds[0] == ("", "pending") and ("cancelled", "pending") in kinds

    for n in range(5):
        client.jobs.wait(client.jobs.create(type="echo", params={"payload": n}).id, timeout=30)
    listed = list(client.jobs.list(status="completed", type="echo", limit=2))  # three pages
    assert len(listed) == 6 and len({j.id for j in listed}) == 6


def test_errors_are_exceptions_with_the_api_s_code(client, web):
    with pytest.raises(NotFound) as missing:
        client.jobs.get("00000000-0000-4000-8000-000000000000")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    with pytest.raises(NotFound):  # an answer, not a drop: raised, not retried
        list(client.jobs.stream("00000000-0000-4000-8000-000000000000"))
    with pytest.raises(InvalidRequest) as bad:
        client.jobs.create(type="no_such_type")
    assert bad.value.status == 400 and "type" in bad.value.details
    with pytest.raises(Exception) as unauthorised, Jobsite(web.url, "jsk_wrong") as wrong:
        wrong.jobs.get("00000000-0000-4000-8000-000000000000")
    assert unauthorised.value.status == 401


def test_a_retried_create_never_makes_two_jobs(client):
    first = client.jobs.create(type="echo", idempotency_key="order-42")
    again = client.jobs.create(type="echo", idempotency_key="order-42")
    assert again.id == first.id
    assert client.jobs.create(type="echo").id != client.jobs.create(type="echo").id


def test_files_batches_collections_and_search(client, user, tmp_path):
    collection = client.collections.create("notes")
    assert client.collections.get(collection["id"])["name"] == "notes"
    for n in range(4):
        client.collections.create(f"more {n}")
    listed = client.collections.list(limit=2)  # three pages
    assert [c["name"] for c in listed] == ["more 3", "more 2", "more 1", "more 0", "notes"]
    services.memories_store(
        collection_id=collection["id"],
        job_id=None,
        source="glaciers.txt",
        source_type="text",
        source_hash="g",
        chunks=[Chunk(text="Glaciers carve valleys.", unit=1, unit_kind="page", blocks=(0, 0))],
    )
    hits = client.memories.search("glaciers", collection_id=collection["id"])
    assert [hit["source"] for hit in hits] == ["glaciers.txt"]

    page = tmp_path / "page.txt"
    page.write_text("Moraines are left behind by glaciers.")
    made = client.jobs.create(type="document_processing", file=page, collection_id=collection["id"])
    assert made.type == "document_processing" and made["has_file"] is True

    batch = client.batches.create([{"type": "echo", "params": {"payload": n}} for n in range(3)])
    assert len(batch.job_ids) == 3
    for job_id in batch.job_ids:
        client.jobs.wait(job_id, timeout=30)
    assert client.batches.get(batch.id).status == "completed"
    assert client.collections.delete(collection["id"]) is None
    assert not Collection.objects.filter(pk=collection["id"]).exists()


def test_the_async_client_makes_the_same_calls(web, api):
    async def scenario() -> list[str]:
        async with AsyncJobsite(web.url, api.api_key) as client:
            job = await client.jobs.create(type="echo", params={"duration_s": 0.3, "steps": 3})
            done = await client.jobs.wait(job.id, timeout=30)
            states = [s["status"] async for s in client.jobs.stream(done.id)]
            listed = [j.id async for j in client.jobs.list(type="echo", limit=1)]
            batch = await client.batches.create([{"type": "echo"}])
            found = await client.memories.search("nothing", limit=1)
            assert (await client.collections.create("async"))["name"] == "async"
            await client.collections.create("async 2")
            names = [c["name"] for c in await client.collections.list(limit=1)]
            assert names == ["async 2", "async"]
            return [done.status, states[-1], str(job.id in listed), str(len(batch.job_ids)),
                    str(found)]  # fmt: skip

    assert asyncio.run(scenario()) == ["completed", "completed", "True", "1", "[]"]


class CuttingProxy:
    """A loopback TCP proxy that cuts the first connection once it has passed ``cut_after``
    bytes from the server: a stream dropped mid-way."""

    def __init__(self, target_port: int, cut_after: int) -> None:
        self.target_port = target_port
        self.cut_after = cut_after
        self.connections = 0
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self.server.accept()
            except OSError:
                return
            self.connections += 1
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            limit = self.cut_after if self.connections == 1 else None
            threading.Thread(
                target=self._pipe, args=(downstream, upstream, None), daemon=True
            ).start()
            threading.Thread(
                target=self._pipe, args=(upstream, downstream, limit), daemon=True
            ).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket, limit: int | None) -> None:
        passed = 0
        try:
            while data := source.recv(65536):
                sink.sendall(data)
                passed += len(data)
                if limit is not None and passed >= limit:
                    break
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()


def test_a_stream_resumes_across_a_dropped_connection_without_losing_or_repeating(web, api):
    with Jobsite(web.url, api.api_key) as direct:
        job = direct.jobs.create(type="echo", params={"duration_s": 3, "steps": 6})
    proxy = CuttingProxy(web.port, cut_after=600)  # past the headers and the first event
    with Jobsite(f"http://127.0.0.1:{proxy.port}", api.api_key) as client:
        states = list(client.jobs.stream(job.id))
    assert proxy.connections >= 2  # it was cut, and the client came back
    seen = [(s["status"], s["progress"]) for s in states]
    assert len(seen) == len(set(seen))  # nothing repeated after the resume...
    assert [p for _, p in seen] == sorted(p for _, p in seen)  # ...and in order
    assert states[-1]["status"] == "completed" and states[-1]["progress"] == 100.0


def test_429_is_retried_after_what_retry_after_asks(platform, live, api):
    limited = WebServer({**platform.env, "JOBSITE_THROTTLE_RATE": "2/s"}, platform.log_dir)
    seen: list[int] = []

    class Recording(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            response = super().handle_request(request)
            seen.append(response.status_code)
            return response

    try:
        with Jobsite(limited.url, api.api_key, transport=Recording()) as client:
            job = client.jobs.create(type="echo")
            started = time.monotonic()
            for _ in range(5):
                assert client.jobs.get(job.id).id == job.id
            took = time.monotonic() - started
    finally:
        limited.stop()
    assert 429 in seen  # the server refused some...
    assert seen.count(200) + seen.count(202) == 6  # ...and every call got through
    assert took >= 1.0  # waiting as Retry-After asked, not hammering


def test_webhooks_verify_what_the_server_signs(client, user):
    from django.utils import timezone

    from jobs.webhooks import signing

    record = signing.secret_for(user.pk)
    body = json.dumps({"type": "job.completed", "data": {"job_id": "x"}})
    headers = signing.headers(record, "msg_1", timezone.now(), body)
    event = client.webhooks.verify(headers, body.encode(), record.secret)
    assert event == {"type": "job.completed", "data": {"job_id": "x"}}
    with pytest.raises(InvalidSignature):
        client.webhooks.verify(headers, body.replace('"x"', '"y"'), record.secret)
    with pytest.raises(InvalidSignature):
        client.webhooks.verify(headers, body, signing.new_secret())


class LosingAnswers(httpx.HTTPTransport):
    """Sends each request, and loses the answer of the first ``lose`` requests to ``path``
    (the server acted; the client saw the connection fail mid-answer)."""

    def __init__(self, path: str, lose: int = 1) -> None:
        super().__init__()
        self.path, self.lose, self.sent = path, lose, 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.startswith(self.path):
            self.sent += 1
            if self.sent <= self.lose:
                response.read()
                response.close()
                raise httpx.ReadError("connection reset mid-answer", request=request)
        return response


def test_a_create_whose_answer_was_lost_is_sent_again_and_makes_one_job(web, api, user, tmp_path):
    from jobs.models import Job

    lossy = LosingAnswers("/api/v1/jobs/", lose=2)
    with Jobsite(web.url, api.api_key, transport=lossy) as client:
        job = client.jobs.create(type="echo", params={"payload": "once"})
    assert lossy.sent == 3  # lost twice, the third answer came back
    assert [str(pk) for pk in Job.objects.filter(owner=user).values_list("id", flat=True)] == [
        job.id
    ]

    upload = tmp_path / "notes.txt"
    upload.write_bytes(b"Glaciers carve valleys. " * 4000)
    lossy = LosingAnswers("/api/v1/jobs/")
    with Jobsite(web.url, api.api_key, transport=lossy) as client:
        collection = client.collections.create("lossy")
        made = client.jobs.create(
            type="document_processing", file=upload, collection_id=collection["id"]
        )
    assert lossy.sent == 2
    assert Job.objects.filter(owner=user).count() == 2
    stored = Job.objects.get(pk=made.id)
    assert stored.input_file.size == upload.stat().st_size  # the retry sent it whole


def test_a_cancel_whose_answer_was_lost_is_not_sent_again(web, api, user):
    """Cancel carries no Idempotency-Key: sent twice, the second would answer 409 for a job
    that was cancelled. The caller hears that the answer was lost, and the job is cancelled."""
    with Jobsite(web.url, api.api_key) as direct:
        job = direct.jobs.create(type="echo", params={"duration_s": 30, "steps": 30})
    lossy = LosingAnswers(f"/api/v1/jobs/{job.id}/cancel/")
    with pytest.raises(ServerError) as lost, Jobsite(web.url, api.api_key, transport=lossy) as c:
        c.jobs.cancel(job.id)
    assert lost.value.code == "unreachable" and lossy.sent == 1
    with Jobsite(web.url, api.api_key) as direct:
        assert direct.jobs.wait(job.id, timeout=30).status == "cancelled"


def test_a_stream_that_cannot_reconnect_gives_up_after_growing_waits():
    """No hot loop against a server that is gone: each attempt waits longer, and the
    stream raises once its retries are spent."""
    with socket.create_server(("127.0.0.1", 0)) as closed:
        port = closed.getsockname()[1]
    attempts: list[float] = []

    class Counting(httpx.HTTPTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            attempts.append(time.monotonic())
            return super().handle_request(request)

    nowhere = Jobsite(f"http://127.0.0.1:{port}", "jsk_any", retries=3, transport=Counting())
    with nowhere, pytest.raises(ServerError) as gone:
        list(nowhere.jobs.stream("00000000-0000-4000-8000-000000000000"))
    assert gone.value.code == "unreachable" and "4 times in a row" in gone.value.message
    waits = [b - a for a, b in itertools.pairwise(attempts)]
    assert len(attempts) == 4 and waits[1] >= 0.5 and waits[2] >= 1.0

    async def follow() -> None:
        async with AsyncJobsite(f"http://127.0.0.1:{port}", "jsk_any", retries=2) as client:
            async for _ in client.jobs.stream("00000000-0000-4000-8000-000000000000"):
                pass

    with pytest.raises(ServerError, match="3 times in a row"):
        asyncio.run(follow())


BLOCKER = """
import importlib.abc, sys
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in {"django", "celery", "kombu", "psycopg", "redis", "jobs",
                                  "jobsite", "processing"}:
            raise ImportError(f"the client imported {name}")
sys.meta_path.insert(0, Block())
sys.path = [p for p in sys.path if p not in ("", ".")]
from jobsite_client import Jobsite
with Jobsite(sys.argv[1], sys.argv[2]) as client:
    job = client.jobs.create(type="echo", params={"payload": "alone"})
    print(client.jobs.wait(job.id, timeout=30).result)
"""


def test_the_client_runs_without_django_celery_or_a_database(web, api, tmp_path):
    done = subprocess.run(
        [sys.executable, "-I", "-c", BLOCKER, web.url, api.api_key],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "alone"
