"""The job log context (``jobsite/logs.py``): which records carry a job's fields, and the
plain and JSON lines they become, through real loggers and handlers."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from jobs import runtime
from jobs.errors import JobError
from jobs.models import Job
from jobsite import logs

JOB = {"job_id": "1b4e28ba-2fa1-11d2-883f-0016d3cca427", "job_type": "echo", "attempt": 2}
FIELDS = {**JOB, "owner_id": 7}


class Captured:
    """A handler on the root logger as settings.LOGGING builds it (the filter on the
    handler), writing to memory."""

    def __init__(self, formatter: logging.Formatter) -> None:
        self.stream = io.StringIO()
        self.handler = logging.StreamHandler(self.stream)
        self.handler.addFilter(logs.JobContextFilter())
        self.handler.setFormatter(formatter)

    def lines(self) -> list[str]:
        return self.stream.getvalue().splitlines()

    def records(self) -> list[dict[str, Any]]:
        return [json.loads(line) for line in self.lines()]


@pytest.fixture
def root_handler() -> Iterator[Any]:
    """Installs a ``Captured`` with the given formatter on the root logger, at INFO."""
    root = logging.getLogger()
    installed: list[Captured] = []
    level = root.level

    def install(formatter: logging.Formatter) -> Captured:
        captured = Captured(formatter)
        root.addHandler(captured.handler)
        installed.append(captured)
        return captured

    root.setLevel(logging.INFO)
    yield install
    for captured in installed:
        root.removeHandler(captured.handler)
    root.setLevel(level)


@pytest.fixture
def json_lines(root_handler) -> Captured:
    return root_handler(logs.JsonFormatter())


@pytest.fixture
def plain_lines(root_handler) -> Captured:
    return root_handler(logs.PlainFormatter("%(levelname)s %(name)s: %(message)s"))


def test_a_json_line_has_time_level_logger_message_and_the_job(json_lines):
    with logs.job_context(**FIELDS):
        logging.getLogger("jobs.services").info("job %s: %s", "x", "moved")
    [record] = json_lines.records()
    assert list(record) == ["time", "level", "logger", "message", *FIELDS]
    assert record["level"] == "INFO" and record["logger"] == "jobs.services"
    assert record["message"] == "job x: moved"
    assert {name: record[name] for name in FIELDS} == FIELDS


def test_a_json_line_carries_the_traceback_as_text_and_extra_fields(json_lines):
    with logs.job_context(**FIELDS):
        try:
            raise ValueError("boom")
        except ValueError:
            logging.getLogger("somelibrary").exception("failed", extra={"delivery": 3})
    [record] = json_lines.records()
    assert record["level"] == "ERROR" and record["delivery"] == 3
    assert isinstance(record["exc_info"], str)
    assert "Traceback" in record["exc_info"] and "ValueError: boom" in record["exc_info"]
    assert record["job_id"] == FIELDS["job_id"]


def test_a_line_no_job_caused_has_no_job_fields(json_lines):
    logging.getLogger("jobs.services").info("between jobs")
    [record] = json_lines.records()
    assert not set(logs.FIELDS) & record.keys()


def test_the_time_is_utc(json_lines):
    logging.getLogger("x").warning("now")
    [record] = json_lines.records()
    moment = datetime.strptime(record["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)
    assert abs((datetime.now(UTC) - moment).total_seconds()) < 5


def test_the_context_reaches_every_logger_inside_and_none_outside(json_lines):
    names = ["jobs.runner", "celery.app.trace", "httpx", "somelibrary.deep.module", "root"]
    with logs.job_context(**FIELDS):
        for name in names:
            logging.getLogger(None if name == "root" else name).warning("inside %s", name)
    for name in names:
        logging.getLogger(None if name == "root" else name).warning("outside %s", name)
    records = json_lines.records()
    inside = [r for r in records if r["message"].startswith("inside")]
    outside = [r for r in records if r["message"].startswith("outside")]
    assert len(inside) == len(outside) == len(names)
    assert all(r["job_id"] == FIELDS["job_id"] and r["owner_id"] == 7 for r in inside)
    assert not any("job_id" in r for r in outside)


def test_nested_contexts_add_for_the_same_job_start_afresh_for_another_and_unwind(json_lines):
    log = logging.getLogger("jobs.test")
    other = str(uuid.uuid4())
    with logs.job_context(job_id=JOB["job_id"]):
        with logs.job_context(job_id=JOB["job_id"], job_type="echo", attempt=1):
            log.info("same job, more known")
            with logs.job_context(job_id=other, owner_id=9):
                log.info("another job")
            log.info("back")
        log.info("outer")
        with pytest.raises(RuntimeError), logs.job_context(job_id=other):
            raise RuntimeError("unwinds on errors too")
        log.info("outer again")
    log.info("none")
    got = [(r["message"], tuple(r.get(f) for f in logs.FIELDS)) for r in json_lines.records()]
    job = JOB["job_id"]
    assert got == [
        ("same job, more known", (job, "echo", 1, None)),
        ("another job", (other, None, None, 9)),
        ("back", (job, "echo", 1, None)),
        ("outer", (job, None, None, None)),
        ("outer again", (job, None, None, None)),
        ("none", (None, None, None, None)),
    ]


def test_bind_job_adds_until_the_enclosing_context_ends_and_is_inert_outside_one():
    logs.bind_job(job_type="echo", attempt=3)  # no context: nothing to add to
    assert logs.current_fields() == {}
    with logs.job_context(job_id=JOB["job_id"]):
        logs.bind_job(job_type="echo", attempt=3, owner_id=5)
        assert logs.current_fields() == {**JOB, "attempt": 3, "owner_id": 5}
        logs.bind_job(Job(id=uuid.uuid4(), type="other"))  # another job's: ignored
        assert logs.current_fields()["job_type"] == "echo"
    assert logs.current_fields() == {}


def test_coroutines_in_one_event_loop_keep_their_own_jobs(json_lines):
    log = logging.getLogger("jobs.async")

    async def job(job_id: str) -> None:
        with logs.job_context(job_id=job_id, job_type="async"):
            for step in range(5):
                log.info("%s step %d", job_id, step)
                await asyncio.sleep(0.001)  # the other coroutine runs here

    async def both() -> None:
        await asyncio.gather(job("a"), job("b"))

    asyncio.run(both())
    records = json_lines.records()
    assert len(records) == 10
    assert {r["job_id"] for r in records[:2]} == {"a", "b"}  # they did interleave
    assert all(r["message"].startswith(r["job_id"]) for r in records)


def test_threads_keep_their_own_jobs(json_lines):
    log = logging.getLogger("jobs.threads")
    barrier = threading.Barrier(4)

    def work(job_id: str) -> None:
        with logs.job_context(job_id=job_id):
            barrier.wait()  # all four inside their contexts at once
            for _ in range(20):
                log.info(job_id)

    threads = [threading.Thread(target=work, args=(f"job-{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    records = json_lines.records()
    assert len(records) == 80 and all(r["job_id"] == r["message"] for r in records)


def test_a_job_row_gives_its_fields_without_a_query(db, user, django_assert_num_queries):
    job = Job.objects.create(owner=user, type="echo", params={}, attempts=2)
    with django_assert_num_queries(0), logs.job_context(job) as fields:
        assert fields == {
            "job_id": str(job.pk),
            "job_type": "echo",
            "attempt": 2,
            "owner_id": user.pk,
        }
    deferred = Job.objects.only("id").get(pk=job.pk)
    with django_assert_num_queries(0), logs.job_context(deferred) as fields:
        assert fields == {"job_id": str(job.pk)}  # what was not loaded is left out
    with logs.job_context(job, attempt=3) as fields:
        assert fields["attempt"] == 3  # a keyword overrides the row


def test_plain_lines_carry_the_job_label_before_the_message(plain_lines):
    log = logging.getLogger("jobs.services")
    with logs.job_context(**FIELDS):
        log.info("moved")
    with logs.job_context(job_id="abc"):
        log.info("only the id known")
    log.info("no job")
    assert plain_lines.lines() == [
        f"INFO jobs.services: [job={JOB['job_id']} type=echo attempt=2] moved",
        "INFO jobs.services: [job=abc] only the id known",
        "INFO jobs.services: no job",
    ]


def test_a_plain_and_a_json_handler_on_one_record_do_not_mix(root_handler):
    plain = root_handler(logs.PlainFormatter("%(message)s"))
    as_json = root_handler(logs.JsonFormatter())
    with logs.job_context(**FIELDS):
        logging.getLogger("x").info("once")
    assert plain.lines() == [f"[job={JOB['job_id']} type=echo attempt=2] once"]
    assert as_json.records()[0]["message"] == "once"


def test_a_callers_own_job_fields_win_over_the_context(json_lines):
    with logs.job_context(**FIELDS):
        logging.getLogger("x").info("relayed", extra={"job_id": "from-elsewhere"})
    [record] = json_lines.records()
    assert record["job_id"] == "from-elsewhere" and record["job_type"] == "echo"


def test_a_forked_child_logs_with_the_context(tmp_path):
    """Prefork pool processes and what a job forks inherit the context with their memory."""
    path = tmp_path / "fork.log"
    handler = logging.FileHandler(path)
    handler.addFilter(logs.JobContextFilter())
    handler.setFormatter(logs.JsonFormatter())
    log = logging.getLogger("jobs.forked")
    log.addHandler(handler)
    log.setLevel(logging.INFO)
    try:
        with logs.job_context(**FIELDS):
            pid = os.fork()
            if pid == 0:
                try:
                    log.info("from the child")
                    handler.flush()
                finally:
                    os._exit(0)
            os.waitpid(pid, 0)
    finally:
        log.removeHandler(handler)
        handler.close()
    [record] = [json.loads(line) for line in path.read_text().splitlines()]
    assert record["message"] == "from the child"
    assert {name: record[name] for name in FIELDS} == FIELDS


def test_a_started_python_process_logs_with_the_context_through_child_env():
    child = (
        "import logging, logging.config;"
        "from django.conf import settings;"
        "logging.config.dictConfig(settings.LOGGING);"
        "logging.getLogger('child').warning('hello')"
    )
    env = {**os.environ, "JOBSITE_LOG_FORMAT": "json", "DJANGO_SETTINGS_MODULE": "jobsite.settings"}
    assert logs.child_env() == {}
    with logs.job_context(**FIELDS):
        env.update(logs.child_env())
    done = subprocess.run(
        [sys.executable, "-c", child], env=env, capture_output=True, text=True, timeout=60
    )
    [record] = [json.loads(line) for line in done.stderr.splitlines()]
    assert record["message"] == "hello"
    assert {name: record[name] for name in FIELDS} == FIELDS


def settings_in_child(**env: str) -> subprocess.CompletedProcess:
    code = (
        "import logging, logging.config;"
        "from django.conf import settings;"
        "logging.config.dictConfig(settings.LOGGING);"
        "print(type(logging.getLogger().handlers[0].formatter).__name__)"
    )
    environ = {name: value for name, value in os.environ.items() if name != "JOBSITE_LOG_FORMAT"}
    environ.update(DJANGO_SETTINGS_MODULE="jobsite.settings", **env)
    return subprocess.run(
        [sys.executable, "-c", code], env=environ, capture_output=True, text=True, timeout=60
    )


def test_the_setting_chooses_the_formatter_plain_by_default():
    assert settings_in_child().stdout.strip() == "PlainFormatter"
    assert settings_in_child(JOBSITE_LOG_FORMAT="json").stdout.strip() == "JsonFormatter"
    refused = settings_in_child(JOBSITE_LOG_FORMAT="xml")
    assert refused.returncode != 0 and "JOBSITE_LOG_FORMAT" in refused.stderr


class _Writer:
    """An attempt's writes (``runtime.AttemptWriter``) that log, as the real ones may
    (a database retry's warning), from the heartbeat thread."""

    job_id = JOB["job_id"]
    task_id = "task"
    attempt = 2

    def __init__(self) -> None:
        self.beats = threading.Event()

    def heartbeat(self) -> bool:
        logging.getLogger("jobs.dbretry").warning("heartbeat written")
        self.beats.set()
        return True

    def progress(self, percent: float, step: str | None, reported_at: float) -> bool:
        return self.heartbeat()

    def keep_alive(self) -> bool:
        return True

    def checkpoint(self, state: Any) -> bool:
        return True

    def saved_checkpoint(self) -> Any:
        return None

    def stop_reason(self) -> JobError:
        return JobError("stopped")

    def note(self, message: str, data: Any = None) -> None:
        pass


def test_the_heartbeat_thread_logs_with_the_job_it_writes_for(json_lines):
    writer = _Writer()
    with logs.job_context(**FIELDS):
        reporter = runtime.Progress(writer, owner_id=7)
    with runtime.activate(reporter):  # the heartbeat thread is not this thread
        assert writer.beats.wait(10)
    beats = [r for r in json_lines.records() if r["message"] == "heartbeat written"]
    assert beats and all(r["job_id"] == JOB["job_id"] and r["owner_id"] == 7 for r in beats)
