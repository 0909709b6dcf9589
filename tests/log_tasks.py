"""A job that logs the ways a real one may (the worker imports it by path): through a
library's logger, by printing, from a process it forks, from a Python process it starts,
and by dying of an error Celery has not been told about (``tests/integration/test_logs.py``).
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys

from jobs.queues import Queue
from jobs.taskbackend import background
from jobsite import logs

# A child that sets up logging as every Jobsite process does (Django's LOGGING).
CHILD = """
import logging, logging.config, sys
from django.conf import settings
logging.config.dictConfig(settings.LOGGING)
logging.getLogger("somelibrary.spawned").warning("spawned process line %s", sys.argv[1])
"""


@background(max_retries=0, queue=Queue.MEDIA)
def noisy(tag: str) -> None:
    logging.getLogger("somelibrary.client").warning("library line %s", tag)
    print(f"printed line {tag}")  # what a careless job does
    pid = os.fork()  # (multiprocessing refuses: a pool process is a daemon)
    if pid == 0:
        logging.getLogger("somelibrary.child").warning("forked process line %s", tag)
        os._exit(0)
    os.waitpid(pid, 0)
    subprocess.run(
        [sys.executable, "-c", CHILD, tag],
        env={**os.environ, **logs.child_env()},
        check=True,
        timeout=60,
    )
    raise ValueError(f"unexpected error {tag}")
