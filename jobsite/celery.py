"""The Celery application: configured from Django settings (the ``CELERY_`` names)."""

import contextlib
import logging
import logging.config
import os
import sys
from typing import Any

from celery import Celery
from celery.signals import celeryd_after_setup, celeryd_init, setup_logging
from celery.utils.log import get_multiprocessing_logger

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")

app = Celery("jobsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@setup_logging.connect
def use_django_logging(loglevel: int | None = None, **_: Any) -> None:
    """Django's LOGGING is the one configuration of worker and beat lines, plain or JSON.
    Left to itself, Celery would add plain-text handlers of its own to the task and
    multiprocessing loggers (even with ``worker_hijack_root_logger`` off); with a receiver
    here it configures nothing. What it would have done that we keep: ``-l`` sets the
    level, and the pool's errors (billiard's logger) reach the log."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    if loglevel:
        logging.getLogger().setLevel(loglevel)
    pool = get_multiprocessing_logger()
    if pool is not None:
        pool.propagate = True
        pool.setLevel(logging.ERROR)


@celeryd_init.connect
def worker_logging(instance: Any = None, **_: Any) -> None:
    """Django's LOGGING from a worker's first line: Celery warns (running as root, say)
    before it sets logging up. In JSON mode no banner (printed, not logged), and the
    shutdown notices its signal handlers write become JSON lines."""
    from celery.apps import worker
    from django.conf import settings

    use_django_logging()
    logging.captureWarnings(True)
    if settings.JOBSITE_LOG_FORMAT == "json":
        instance.quiet = True
        worker.safe_say = _say_as_json


@celeryd_after_setup.connect
def redirect_worker_output(instance: Any = None, **_: Any) -> None:
    """A job's prints go to the log, as when Celery sets logging up itself (with a
    ``setup_logging`` receiver it leaves that to us)."""
    if instance.redirect_stdouts:
        app.log.redirect_stdouts(instance.redirect_stdouts_level)


def _say_as_json(msg: str, f: Any = sys.__stderr__) -> None:
    """Celery's ``safe_say`` (one ``os.write``: it runs in signal handlers, where logging
    could deadlock on a handler's lock), writing a JSON line."""
    from jobsite.logs import JsonFormatter

    record = logging.LogRecord("celery.apps.worker", logging.WARNING, "", 0, msg.strip(), (), None)
    # As Celery's: a notice that cannot be written must not stop the shutdown.
    with contextlib.suppress(OSError, ValueError):
        os.write(f.fileno(), (JsonFormatter().format(record) + "\n").encode())
