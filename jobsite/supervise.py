"""The small process supervisor behind ``make run``.

It starts named commands, prints their output line by line behind their names
(``12:00:01 web    | ...``, as honcho did), and restarts whichever one dies, after a capped
exponential backoff, while the others keep running. SIGINT, SIGTERM or SIGHUP stops them all:
SIGTERM to each, SIGKILL to what is left after a grace period (at once on a second signal),
and ``run()`` returns 0.

Not honcho: it stops every process when one exits, by design. Not supervisord or circus: a
daemon with its own configuration files and control socket, more than one foreground
command needs. This is a page of code we can read and test (``tests/hardening/``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import BinaryIO

import psutil

# ANSI colours for the names when the output is a terminal (honcho's palette).
COLOURS = ("36", "33", "32", "35", "31", "34", "96", "93", "92", "95")
SYSTEM = "system"


@dataclass
class Program:
    """One supervised command and what the supervisor knows about its current run."""

    name: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    proc: subprocess.Popen | None = None
    started: float = 0.0  # time.monotonic() of the current run
    quick_deaths: int = 0  # deaths in a row, each before `stable_after`: drives the backoff
    restart_at: float | None = None  # time.monotonic() when it starts again
    leftovers: list[psutil.Process] = field(default_factory=list)  # its dead run's group
    leftovers_kill_at: float = 0.0


class Supervisor:
    """Runs programs until a stop signal; restarts any that dies. See the module docstring."""

    def __init__(
        self,
        *,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        stable_after: float = 60.0,
        stop_grace: float = 10.0,
        out: BinaryIO | None = None,
    ) -> None:
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.stable_after = stable_after  # a run this long resets the backoff
        self.stop_grace = stop_grace
        self.programs: list[Program] = []
        self._out = out or sys.stdout.buffer
        self._colour = self._out.isatty()
        self._lock = threading.Lock()
        self._signals: list[int] = []
        self._readers: list[threading.Thread] = []

    def add(self, name: str, argv: list[str], *, env: dict[str, str], cwd: str) -> None:
        self.programs.append(Program(name, argv, env, cwd))

    # Output ---------------------------------------------------------------------------------

    def echo(self, text: str) -> None:
        """Print text as it is (the launcher's banner), between whole lines of the children."""
        self._emit(text.encode())

    def log(self, text: str) -> None:
        """A line of the supervisor's own, under the name ``system``."""
        self._line(SYSTEM, text.encode() + b"\n")

    def _line(self, name: str, line: bytes) -> None:
        names = [SYSTEM, *(program.name for program in self.programs)]
        label = name.ljust(max(map(len, names)))
        prefix = f"{time.strftime('%H:%M:%S')} {label} | "
        if self._colour and name != SYSTEM:
            colour = COLOURS[(names.index(name) - 1) % len(COLOURS)]
            prefix = f"\033[{colour}m{prefix}\033[0m"
        self._emit(prefix.encode() + (line if line.endswith(b"\n") else line + b"\n"))

    def _emit(self, data: bytes) -> None:
        with self._lock:
            try:
                self._out.write(data)
                self._out.flush()
            except (OSError, ValueError):
                pass  # nobody reads our output any more: the children must not block on it

    def _pump(self, name: str, stream: BinaryIO) -> None:
        with stream:
            for line in iter(stream.readline, b""):
                self._line(name, line)

    # Running --------------------------------------------------------------------------------

    def run(self) -> int:
        """Start every program and keep them running until a stop signal; then stop them all."""
        previous = {}
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            previous[sig] = signal.getsignal(sig)
            if sig != signal.SIGHUP or previous[sig] != signal.SIG_IGN:  # nohup stays nohup
                signal.signal(sig, self._on_signal)
        try:
            for program in self.programs:
                self._spawn(program)
            while not self._signals:
                self._tick()
                time.sleep(0.1)
            self._stop_all()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for reader in self._readers:
                reader.join(2)
        return 0

    def _on_signal(self, signum: int, frame: object) -> None:
        self._signals.append(signum)

    def _spawn(self, program: Program) -> None:
        program.restart_at = None
        program.started = time.monotonic()
        try:
            program.proc = subprocess.Popen(  # noqa: S603  (our own commands, no shell)
                program.argv,
                cwd=program.cwd,
                env={**program.env, "PYTHONUNBUFFERED": "1"},
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                # Its own process group: a terminal's Ctrl-C reaches the supervisor only, which
                # stops the children in order; a dead child's group is found and cleaned up.
                start_new_session=True,
            )
        except OSError as exc:
            self._schedule_restart(program, f"could not start: {exc}")
            return
        self.log(f"{program.name} started (pid {program.proc.pid})")
        reader = threading.Thread(
            target=self._pump, args=(program.name, program.proc.stdout), daemon=True
        )
        reader.start()
        self._readers = [thread for thread in self._readers if thread.is_alive()] + [reader]

    def _tick(self) -> None:
        now = time.monotonic()
        for program in self.programs:
            if program.proc is not None:
                if _has_exited(program.proc):
                    self._reap(program)
            elif program.restart_at is not None and now >= program.restart_at:
                program.leftovers = [proc for proc in program.leftovers if _alive(proc)]
                if not program.leftovers:
                    self._spawn(program)
                elif now >= program.leftovers_kill_at:
                    _signal_all(program.leftovers, signal.SIGKILL)

    def _reap(self, program: Program) -> None:
        """A program died: stop what is left of its process group (a dead worker's pool), and
        start it again after the backoff."""
        proc = program.proc
        assert proc is not None
        # Found while the dead leader is not yet reaped, so its group id cannot be reused.
        program.leftovers = _group(proc.pid)
        _signal_all(program.leftovers, signal.SIGTERM)
        program.leftovers_kill_at = time.monotonic() + self.stop_grace
        code = proc.wait()
        program.proc = None
        if code < 0:
            how = f"was killed by {_signal_name(-code)} (exit code {code})"
        else:
            how = f"exited with code {code}"
        uptime = time.monotonic() - program.started
        self._schedule_restart(program, f"(pid {proc.pid}) {how} after {uptime:.1f}s")

    def _schedule_restart(self, program: Program, what: str) -> None:
        if time.monotonic() - program.started >= self.stable_after:
            program.quick_deaths = 0
        delay = min(self.backoff_max, self.backoff_base * 2**program.quick_deaths)
        program.quick_deaths += 1
        program.restart_at = time.monotonic() + delay
        at = time.strftime("%H:%M:%S", time.localtime(time.time() + delay))
        self.log(f"{program.name} {what}; restarting it in {delay:g}s, at {at}")

    def _stop_all(self) -> None:
        """SIGTERM to every program, SIGKILL to whatever is left after the grace period (or at
        a second stop signal). Their process groups are listed first, so a worker's pool
        processes are killed too if the worker leaves them behind."""
        running = [program for program in self.programs if program.proc is not None]
        self.log(
            f"{_signal_name(self._signals[0])} received: stopping "
            + (", ".join(program.name for program in running) or "nothing")
        )
        family: list[psutil.Process] = []
        for program in self.programs:
            family += program.leftovers
            if program.proc is not None:
                family += _group(program.proc.pid)
                program.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + self.stop_grace
        killed = False
        # After SIGKILL, a few seconds more for the kernel; a process stuck in the kernel
        # (uninterruptible I/O) must not keep the launcher from exiting.
        while (running or any(_alive(proc) for proc in family)) and time.monotonic() < (
            deadline + 5
        ):
            for program in list(running):
                assert program.proc is not None
                code = program.proc.poll()
                if code is not None:
                    self.log(f"{program.name} stopped (exit code {code})")
                    running.remove(program)
            if not killed and (len(self._signals) > 1 or time.monotonic() > deadline):
                still = [program.name for program in running] or ["leftover processes"]
                self.log(f"killing {', '.join(still)} (SIGKILL)")
                for program in running:
                    assert program.proc is not None
                    program.proc.kill()
                _signal_all(family, signal.SIGKILL)
                killed = True
            time.sleep(0.05)


def _has_exited(proc: subprocess.Popen) -> bool:
    """Whether the process has exited, without reaping it (its pid, and so its process group
    id, stays taken until ``proc.wait()``)."""
    if not hasattr(os, "waitid"):  # macOS before Python 3.13
        return proc.poll() is not None
    try:
        flags = os.WEXITED | os.WNOHANG | os.WNOWAIT
        return os.waitid(os.P_PID, proc.pid, flags) is not None
    except ChildProcessError:
        return True


def _group(pgid: int) -> list[psutil.Process]:
    """Every live process in the process group, its leader included."""
    members = []
    for proc in psutil.process_iter():
        try:
            if os.getpgid(proc.pid) == pgid and _alive(proc):
                members.append(proc)
        except (OSError, psutil.Error):
            continue
    return members


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _signal_all(procs: list[psutil.Process], sig: int) -> None:
    for proc in procs:
        try:
            proc.send_signal(sig)  # psutil checks it is still the same process
        except psutil.Error:
            continue


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
