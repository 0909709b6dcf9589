"""``make run`` keeps running and never opens Flower: the real embedded platform, started
twice in all.

The first start is ``make run`` on a terminal of its own (a pseudo-terminal): a killed worker
or beat is restarted while the web keeps answering, Flower asks for a password that is on no
command line, and Ctrl-C on that terminal stops every child, then Valkey, and ``make`` exits 0.
The second start, on the same var/ without ``credentials.txt`` (the admin user exists, its
password is unknown), checks Flower still asks for a password, and that SIGTERM stops it all.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import pty
import re
import signal
import subprocess
import sys
import termios
import threading
import time
from pathlib import Path

import httpx
import psutil
import pytest

from tests.helpers import ROOT, wait_for
from tests.plugin import free_port

pytestmark = [
    pytest.mark.worker,
    pytest.mark.skipif(
        os.environ.get("DATABASE_URL", "").startswith("postgres"),
        reason="make run is the embedded default: tested in the embedded suite",
    ),
]

# What the test session sets for its own processes (broker, database, timings) or a make
# above it: the platform must find its own, as on a fresh machine.
SESSION_ENV = ("DATABASE_URL", "CACHE_URL", "PORT", "MAKEFLAGS", "MFLAGS", "MAKELEVEL")
SESSION_PREFIXES = ("JOBSITE_", "CELERY_", "FLOWER_")


class Platform:
    """One start of the embedded platform, its output in a log file."""

    def __init__(self, var_dir: Path, log: Path) -> None:
        self.var_dir = var_dir
        self.log_path = log
        self.ports = {name: free_port() for name in ("PORT", "JOBSITE_VALKEY_PORT", "FLOWER_PORT")}
        self.env = {
            name: value
            for name, value in os.environ.items()
            if name not in SESSION_ENV and not name.startswith(SESSION_PREFIXES)
        }
        self.env.update({name: str(port) for name, port in self.ports.items()})
        self.env.update(JOBSITE_VAR_DIR=str(var_dir), JOBSITE_WORKER_CONCURRENCY="1")
        self.base = f"http://127.0.0.1:{self.ports['PORT']}"
        self.flower = f"http://127.0.0.1:{self.ports['FLOWER_PORT']}/"
        self.terminal: int | None = None
        self.proc: subprocess.Popen | None = None

    def start_make_on_a_terminal(self) -> None:
        """``make run`` as a shell would run it in a terminal: a session whose controlling
        terminal is a new pseudo-terminal, read into the log by a thread."""
        venv = Path(sys.prefix)
        # -o: never reinstall here, whatever pyproject.toml's date.
        command = ["make", f"VENV={venv}", "-o", str(venv / ".installed-stamp"), "run"]
        self.terminal, child = pty.openpty()
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env,
            stdin=child,
            stdout=child,
            stderr=child,
            start_new_session=True,
            preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0),  # the terminal is its own
        )
        os.close(child)
        threading.Thread(target=self._read_terminal, daemon=True).start()

    def _read_terminal(self) -> None:
        with open(self.log_path, "ab") as log:
            while True:
                try:
                    data = os.read(self.terminal, 65536)
                except OSError:  # EIO: every process on the terminal is gone
                    return
                if not data:
                    return
                log.write(data)
                log.flush()

    def start(self) -> None:
        """``python -m jobsite.embedded``, in a session of its own, without a terminal."""
        with open(self.log_path, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "jobsite.embedded"],
                cwd=ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_running(self) -> None:
        wait_for(lambda: "Jobsite is running" in self.text() or self.exited(), 180, "the banner")
        assert not self.exited(), self.text()[-3000:]
        wait_for(lambda: _flower_up(self.flower), 60, "Flower")

    def text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def exited(self) -> bool:
        return self.proc is not None and self.proc.poll() is not None

    def family(self) -> list[psutil.Process]:
        assert self.proc is not None
        return [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(True)]

    def main_process(self, command: str) -> psutil.Process:
        """The main process of ``celery <command>`` (a worker's pool processes are its
        children and run the same command line)."""
        mains = [proc for proc in self.family() if _celery_command(proc) == command]
        mains = [proc for proc in mains if _celery_command(proc.parent()) != command]
        assert len(mains) == 1, [proc.cmdline() for proc in mains]
        return mains[0]

    def new_main_process(self, command: str, old: psutil.Process) -> psutil.Process | None:
        with contextlib.suppress(AssertionError, psutil.Error):
            proc = self.main_process(command)
            if proc.pid != old.pid:
                return proc
        return None

    def launcher(self) -> psutil.Process:
        """``python -m jobsite.embedded`` (under make, make's child)."""
        return next(proc for proc in self.family() if "jobsite.embedded" in proc.cmdline())

    def stop(self) -> None:
        """Whatever state it is in, stop it and everything it started."""
        if self.proc is None or self.exited():
            return
        family = self.family()
        with contextlib.suppress(StopIteration, psutil.Error):
            self.launcher().terminate()
        try:
            self.proc.wait(30)
        finally:
            for proc in family:
                with contextlib.suppress(psutil.Error):
                    proc.kill()


@pytest.fixture(scope="module")
def platform(tmp_path_factory) -> Platform:
    folder = tmp_path_factory.mktemp("make-run")
    running = Platform(folder / "var", folder / "make-run.log")
    running.start_make_on_a_terminal()
    try:
        running.wait_running()
        running.key = re.search(r"API key:\s+(\S+)", running.text())[1]
        running.password = re.search(r"Password:\s+(\S+)", running.text())[1]
        yield running
    finally:
        running.stop()


def test_flower_asks_for_a_password_that_is_on_no_command_line(platform):
    for path in ("", "api/workers"):
        assert httpx.get(platform.flower + path).status_code == 401
        wrong = httpx.get(platform.flower + path, auth=("admin", "wrong"))
        assert wrong.status_code == 401
    assert httpx.get(platform.flower, auth=("admin", platform.password)).status_code == 200
    assert _command_lines_with(platform.password) == []
    assert (platform.var_dir / "credentials.txt").stat().st_mode & 0o777 == 0o600


def test_a_killed_worker_is_restarted_while_the_web_answers(platform):
    auth = {"Authorization": f"Bearer {platform.key}"}
    worker = platform.main_process("worker")
    pool = worker.children()
    failures: list[str] = []
    polls = 0
    done = threading.Event()

    def poll_the_web() -> None:
        nonlocal polls
        with httpx.Client(timeout=5) as client:
            while not done.is_set():
                try:
                    answer = client.get(f"{platform.base}/api/v1/job-types/", headers=auth)
                    if answer.status_code != 200:
                        failures.append(f"{answer.status_code} {answer.text[:200]}")
                except httpx.HTTPError as exc:
                    failures.append(repr(exc))
                polls += 1
                time.sleep(0.2)

    poller = threading.Thread(target=poll_the_web, daemon=True)
    poller.start()
    try:
        time.sleep(1)
        worker.kill()  # SIGKILL to the worker's main process
        # Created while no worker runs: the restarted worker runs it.
        job = httpx.post(
            f"{platform.base}/api/v1/jobs/",
            json={"type": "echo", "params": {"payload": "after the kill"}},
            headers=auth,
        )
        assert job.status_code == 202, job.text
        job_id = job.json()["job_id"]
        line = wait_for(
            lambda: re.search(
                rf"worker \(pid {worker.pid}\) was killed by SIGKILL \(exit code -9\) "
                r"after [\d.]+s; restarting it in [\d.]+s, at \d\d:\d\d:\d\d",
                platform.text(),
            ),
            30,
            "the supervisor's line about the dead worker",
        )
        assert line
        new = wait_for(lambda: platform.new_main_process("worker", worker), 60, "a new worker")
        assert new.is_running()

        def completed() -> bool:
            status = httpx.get(f"{platform.base}/api/v1/jobs/{job_id}/", headers=auth).json()
            return status["status"] == "completed"

        wait_for(completed, 90, "the job to complete on the restarted worker")
        # The dead worker's pool processes were stopped with it.
        wait_for(lambda: not any(_alive(proc) for proc in pool), 20, "the old pool to exit")
    finally:
        done.set()
        poller.join(10)
    assert polls > 10
    assert failures == [], failures[:5]
    assert not platform.exited()


def test_a_killed_beat_is_restarted(platform):
    beat = platform.main_process("beat")
    beat.kill()
    wait_for(
        lambda: f"beat (pid {beat.pid}) was killed by SIGKILL (exit code -9)" in platform.text(),
        30,
        "the supervisor's line about the dead beat",
    )
    wait_for(lambda: platform.new_main_process("beat", beat), 60, "a new beat")
    assert not platform.exited()


def test_ctrl_c_stops_every_child_then_valkey_and_make_exits_0(platform):
    family = platform.family()
    valkey = [proc for proc in family if "valkey-server" in proc.name()]
    assert len(valkey) == 1
    launchers = [psutil.Process(platform.proc.pid), platform.launcher()]
    children = [proc for proc in family if proc not in valkey + launchers]
    gone_at: dict[int, float] = {}
    os.write(platform.terminal, b"\x03")  # Ctrl-C, as typed on the terminal
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(gone_at) < len(family):
        for proc in family:
            if proc.pid not in gone_at and not _alive(proc):
                gone_at[proc.pid] = time.monotonic()
        time.sleep(0.02)
    alive = [proc.cmdline() for proc in family if proc.pid not in gone_at]
    assert alive == [], platform.text()[-3000:]
    assert platform.proc.wait(10) == 0, platform.text()[-3000:]  # make's exit status
    assert "SIGINT received: stopping web, worker, media-worker, beat, flower" in platform.text()
    assert max(gone_at[proc.pid] for proc in children) <= gone_at[valkey[0].pid]


def test_flower_still_asks_for_a_password_when_credentials_are_lost(platform, tmp_path):
    platform.stop()  # this test needs only its var/, where the admin user exists
    credentials = platform.var_dir / "credentials.txt"
    credentials.unlink()
    again = Platform(platform.var_dir, tmp_path / "second-start.log")
    again.start()
    try:
        again.wait_running()
        for path in ("", "api/workers"):
            assert httpx.get(again.flower + path).status_code == 401
        # A password made for Flower, kept where the admin's were, readable by us only.
        password = re.search(r"Flower password:\s+(\S+)", credentials.read_text())[1]
        assert credentials.stat().st_mode & 0o777 == 0o600
        assert f"Flower password: {password}" in again.text()  # told on the terminal
        assert httpx.get(again.flower, auth=("admin", password)).status_code == 200
        assert _command_lines_with(password) == []
    finally:
        if not again.exited():
            os.kill(again.proc.pid, signal.SIGTERM)
        code = again.proc.wait(60)
    assert code == 0, again.text()[-3000:]


SUPERVISED = """
import os, sys
from jobsite.supervise import Supervisor

supervisor = Supervisor(backoff_base=0.1, backoff_max=0.4, stable_after=1.5, stop_grace=2)
python = [sys.executable, "-I", "-S", "-c"]  # starts in milliseconds, far below stable_after
env = dict(os.environ)
supervisor.add("crash", [*python, "print('up'); raise SystemExit(3)"], env=env, cwd=".")
steady = "import time; print('up'); time.sleep(2.5); raise SystemExit(4)"
supervisor.add("steady", [*python, steady], env=env, cwd=".")
sys.exit(supervisor.run())
"""


def test_the_backoff_doubles_for_quick_deaths_up_to_its_cap_and_resets_after_a_stable_run(
    tmp_path,
):
    """The supervisor on its own, with short times: no platform needed."""
    log = tmp_path / "supervise.log"

    def delays(name: str) -> list[float]:
        pattern = rf"{name} \(pid \d+\) exited with code \d after [\d.]+s; restarting it in "
        return [float(delay) for delay in re.findall(pattern + r"([\d.]+)s", log.read_text())]

    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-c", SUPERVISED], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        wait_for(lambda: len(delays("crash")) >= 5 and len(delays("steady")) >= 2, 60, "restarts")
    finally:
        proc.terminate()
        code = proc.wait(20)
    text = log.read_text()
    assert code == 0, text
    assert delays("crash")[:5] == [0.1, 0.2, 0.4, 0.4, 0.4], text
    assert set(delays("steady")) == {0.1}, text  # each run outlived stable_after
    assert re.search(r"\d\d:\d\d:\d\d crash  \| up\n", text), text  # names as prefixes
    assert "crash (pid" in text and "exited with code 3" in text
    assert "SIGTERM received: stopping" in text


def _celery_command(proc: psutil.Process | None) -> str | None:
    """``worker`` for ``python -m celery -A jobsite worker ...``, and so on; the media
    queue's own worker (``-n media@...``) is ``media-worker``."""
    try:
        argv = proc.cmdline() if proc else []
    except psutil.Error:
        return None
    if argv[1:3] == ["-m", "celery"] and "-A" in argv:
        command = argv[argv.index("-A") + 2]
        if "-n" in argv and argv[argv.index("-n") + 1].startswith("media@"):
            return f"media-{command}"
        return command
    return None


def _command_lines_with(text: str) -> list[list[str]]:
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        argv = proc.info["cmdline"] or []
        if any(text in arg for arg in argv):
            found.append(argv)
    return found


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _flower_up(url: str) -> bool:
    try:
        return httpx.get(url).status_code in (200, 401)
    except httpx.HTTPError:
        return False
