"""What a running job holds: its progress reporter and the worker-side heartbeat.

``progress(percent, step)`` is cheap enough to call per page or per chunk: calls closer
together than ``JOBSITE_PROGRESS_MIN_INTERVAL`` only update memory, and one background
thread per worker process flushes the last value, beats the heartbeat and notices a
cancel request. The progress call is where the job learns it must stop: it raises
``JobCancelled`` (or ``AttemptLost`` when the reaper gave the job to another attempt).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import resource
import threading
import time
from collections.abc import Iterator
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Protocol

from django.conf import settings
from django.db import DatabaseError, connection

from jobs.errors import JobError
from jobsite import logs

log = logging.getLogger(__name__)

_current: ContextVar[Progress | None] = ContextVar("jobsite_progress", default=None)


class AttemptWriter(Protocol):
    """Where a reporter writes, bound to one attempt (``jobs.services.AttemptWrites``).
    The runner hands it over: the runtime knows no services, and the services need not be
    loaded to import the runtime."""

    job_id: Any
    task_id: str
    attempt: int

    def progress(self, percent: float, step: str | None, reported_at: float) -> bool: ...
    def heartbeat(self) -> bool: ...
    def keep_alive(self) -> bool: ...
    def checkpoint(self, state: Any) -> bool: ...
    def saved_checkpoint(self) -> Any: ...
    def stop_reason(self) -> JobError: ...
    def note(self, message: str, data: Any = None) -> None: ...


class Progress:
    """The reporter handed to a pipeline: ``progress(42, "page 42 of 100")``."""

    def __init__(
        self, writer: AttemptWriter, *, input_path: str | None = None, owner_id: Any = None
    ) -> None:
        self.writer = writer
        self.owner_id = owner_id  # the job's owner: whose rows a job may touch
        self.job_id = writer.job_id
        self.attempt = writer.attempt
        self.task_id = writer.task_id
        self.input_path = input_path
        self.percent = 0.0
        self.step: str | None = None
        self._pending = False
        self._reported_at = time.time()
        self._last_write = time.monotonic()
        self._stop: JobError | None = None
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        # The heartbeat thread writes for this job: its lines name the job as the job's do.
        self.log_fields = logs.current_fields()

    def __call__(self, percent: float, step: str | None = None) -> None:
        self.check()
        value = float(percent)
        if math.isnan(value):
            raise ValueError("progress percent must be a number")
        with self._lock:
            self.percent = max(0.0, min(100.0, value))
            if step is not None:
                self.step = str(step)
            self._pending = True
            self._reported_at = time.time()
        due = time.monotonic() - self._last_write >= settings.JOBSITE_PROGRESS_MIN_INTERVAL
        if due and not _in_event_loop():
            try:
                self.flush()
            except DatabaseError as exc:  # progress is best effort: the thread writes it later
                log.warning("Progress of job %s not written yet: %s", self.job_id, exc)
                connection.close()
                self._pending = True
        elif _heartbeat is not None:
            # The thread writes the buffered value when due (at once, from an event loop:
            # an ``async def`` job may not touch the database from its loop's thread).
            _heartbeat.poke(time.monotonic() if due else self.next_due())
        self.check()

    def check(self) -> None:
        """Raise if the job must stop (cancelled, or no longer this attempt's)."""
        if self._stop is not None:
            raise self._stop

    def checkpoint(self, state: Any) -> None:
        """Record where the job got to, inside the transaction of the step that got it
        there (call it last in that transaction: it locks the job's row until commit). A
        retry or a restart of the job gets ``state`` back from ``resume()``. Raises (and so
        rolls the step back) when this attempt may no longer write: cancelled, or taken
        over by another attempt."""
        self.check()
        if not self.writer.checkpoint(state):
            self._stop = self.writer.stop_reason()
            raise self._stop

    def resume(self) -> Any:
        """The last checkpoint an earlier attempt of this job recorded, or None."""
        return self.writer.saved_checkpoint()

    def note(self, message: str, data: Any = None) -> None:
        """Record a notable step in the job's event log (not for every page)."""
        self.writer.note(message, data)

    def flush(self) -> None:
        """Write the latest progress (or just the heartbeat) in one conditional UPDATE."""
        with self._write_lock:
            if self._stop is not None:  # stopping: only prove we are alive until we do
                self.writer.keep_alive()
                return
            with self._lock:
                pending, self._pending = self._pending, False
                percent, step, at = self.percent, self.step, self._reported_at
            self._last_write = time.monotonic()
            alive = self.writer.progress(percent, step, at) if pending else self.writer.heartbeat()
            if not alive and self._stop is None:
                self._stop = self.writer.stop_reason()

    def next_due(self) -> float:
        """When the next write is due: the buffered value's, or the heartbeat's."""
        if self._pending:
            return self._last_write + settings.JOBSITE_PROGRESS_MIN_INTERVAL
        return self._last_write + settings.JOBSITE_HEARTBEAT_INTERVAL


def _in_event_loop() -> bool:
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True


class _Heartbeat(threading.Thread):
    """One daemon thread per worker process for every job running in it. It sleeps until
    the next write is due (a buffered progress value, or a heartbeat), not on a tick."""

    def __init__(self) -> None:
        super().__init__(name="jobsite-heartbeat", daemon=True)
        self.active: set[Progress] = set()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self.wakes_at = math.inf  # when the thread wakes on its own (monotonic)
        self.busy_until = 0.0  # a job started lately: tick at the progress interval until then

    def poke(self, due: float) -> None:
        """A value was buffered, due for writing at ``due``: wake the thread only if it would
        otherwise write it late. A worker running short jobs back to back ticks at the
        progress interval, so a value due by its next tick needs no wake-up."""
        if due < self.wakes_at and not self.wake.is_set():
            self.wake.set()

    def run(self) -> None:
        while True:
            self.wakes_at = math.inf  # awake: a poke now makes it look again before sleeping
            with self.lock:
                running = list(self.active)
            now = time.monotonic()
            for reporter in running:
                if reporter.next_due() <= now:
                    with logs.job_context(**reporter.log_fields):
                        try:
                            reporter.flush()
                        except Exception as exc:  # the database blipped: try again later
                            log.warning("Heartbeat for job %s failed: %s", reporter.job_id, exc)
                            connection.close()
            # Between jobs of a busy worker it ticks at the progress interval, so a value a
            # short job buffers needs no wake-up of its own; idle, it wakes once per heartbeat
            # interval (a job that starts meanwhile is picked up by then).
            if now < self.busy_until:
                later = now + settings.JOBSITE_PROGRESS_MIN_INTERVAL
            else:
                later = now + settings.JOBSITE_HEARTBEAT_INTERVAL
                if not running:
                    # Idle for a heartbeat interval: give back this thread's database
                    # connection (a second one per pool process). A busy worker keeps it.
                    connection.close()
            self.wakes_at = max(now + 0.005, min([later, *(r.next_due() for r in running)]))
            self.wake.wait(self.wakes_at - time.monotonic())
            self.wake.clear()


_heartbeat: _Heartbeat | None = None
_heartbeat_pid: int | None = None
_heartbeat_guard = threading.Lock()


def _heartbeat_thread() -> _Heartbeat:
    """The process's heartbeat thread, started on first use (after any fork)."""
    global _heartbeat, _heartbeat_pid
    import os

    with _heartbeat_guard:
        if _heartbeat is None or _heartbeat_pid != os.getpid() or not _heartbeat.is_alive():
            _heartbeat = _Heartbeat()
            _heartbeat_pid = os.getpid()
            _heartbeat.start()
        return _heartbeat


@contextlib.contextmanager
def activate(reporter: Progress) -> Iterator[Progress]:
    """Make ``reporter`` the current job's for the duration of one attempt."""
    beat = _heartbeat_thread()
    with beat.lock:
        beat.active.add(reporter)
    beat.busy_until = time.monotonic() + settings.JOBSITE_HEARTBEAT_INTERVAL
    token = _current.set(reporter)
    try:
        yield reporter
    finally:
        _current.reset(token)
        with beat.lock:
            beat.active.discard(reporter)


def limit_process_memory() -> None:
    """Cap this (pool) process's data segment at ``JOBSITE_WORKER_MEMORY_LIMIT_MB``."""
    limit = settings.JOBSITE_WORKER_MEMORY_LIMIT_MB
    if limit:
        size = limit * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_DATA, (size, size))


def lower_process_priority() -> None:
    """Run this (pool) process at ``JOBSITE_WORKER_NICE``: a pool of long CPU-bound jobs
    (media) yields the cores to the web and the short jobs' workers when they need them,
    and still has them all when they do not."""
    if settings.JOBSITE_WORKER_NICE > 0:
        os.nice(settings.JOBSITE_WORKER_NICE)


def lower_session_priority() -> None:
    """The same for the whole worker, where Linux schedules by session: with autogroup
    (most kernels), a process's nice counts only against its own session's processes,
    and a worker started in a session of its own (a container's command, ``make run``'s
    supervisor, systemd) would compete with the web at full weight whatever its nice.
    The session's weight is set instead, where the worker leads its session alone."""
    nice = settings.JOBSITE_WORKER_NICE
    if nice > 0 and os.getsid(0) == os.getpid():
        with contextlib.suppress(OSError):  # no autogroup in this kernel: nice alone
            Path("/proc/self/autogroup").write_text(str(nice))


@contextlib.contextmanager
def memory_limit(extra_mb: int) -> Iterator[None]:
    """Let one attempt allocate at most ``extra_mb`` more than the process holds now: a
    hostile file meets a MemoryError (the job fails) instead of the kernel's OOM killer
    (the worker dies). The soft limit is restored for the next job."""
    if not extra_mb:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_DATA)
    cap = _data_segment_bytes() + extra_mb * 1024 * 1024
    if soft != resource.RLIM_INFINITY:
        cap = min(cap, soft)
    resource.setrlimit(resource.RLIMIT_DATA, (cap, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def _data_segment_bytes() -> int:
    """VmData: what RLIMIT_DATA counts (heap and private mappings)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmData:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def current() -> Progress | None:
    """The running job's reporter (its id, attempt...), or None outside a job."""
    return _current.get()


def progress(percent: float, step: str | None = None) -> None:
    """Report progress from code running as a job; outside a job it does nothing, so the
    same function can be called directly (in tests, or in a shell)."""
    reporter = _current.get()
    if reporter is not None:
        reporter(percent, step)
