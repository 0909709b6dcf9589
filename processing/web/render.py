"""``render_js``: a web page rendered in headless Chromium, every request it makes checked.

Pages whose text is written by scripts have nothing to extract in the HTML the server
sends, so the page is loaded in Debian's Chromium and the rendered DOM is returned. The
URL still comes from a user and the browser runs inside our network, so it gets no path
of its own to the network:

- all its traffic goes to a proxy in this process (``jobs.outbound.proxy``) that checks,
  pins and logs every request, tunnel, frame, XHR and redirect hop with the same address
  policy ``fetch`` uses; ``--proxy-bypass-list=<-loopback>`` removes Chromium's implicit
  "loopback goes direct" rule;
- ``--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1`` leaves the browser unable
  to resolve any name or reach any IP literal itself, so nothing it does can make the
  second lookup DNS rebinding needs, even what would skip the proxy. Chromium maps IP
  literals too, the proxy's among them: 127.0.0.1 is excluded so the proxy can be reached,
  and nothing else goes there directly (no bypass);
- WebRTC may not send UDP outside the proxy (``disable_non_proxied_udp``: an HTTP proxy
  carries no UDP, so none), QUIC is off, background services are off.

Bounds: one deadline for everything (the browser is killed at it), a byte budget and a
request count at the proxy, the memory of the browser's whole process tree (PSS, polled;
killed past ``memory_mb``), and the HTML's size. The browser is its own process group,
killed with it when the render ends, and gets ``PR_SET_PDEATHSIG`` so it dies with the
worker even when the worker is SIGKILLed. It is driven over ``--remote-debugging-pipe``
(no port anyone could reach), with a fresh profile in a temporary directory that is
removed afterwards, and an environment holding nothing of the worker's.

Errors: ``FetchError`` with fetch's codes (``bad_url``, ``url_refused``, ``timeout``,
``too_large``, ``http_error``, ``connect_error``) for what the page did, and
``DocumentError`` for the renderer (``renderer_missing``, ``renderer_memory``,
``renderer_failed``).
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import http
import json
import os
import resource
import select
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psutil
from django.conf import settings

from jobs.outbound import FetchError
from jobs.outbound.client import RETRYABLE_STATUSES, parse_url, show_url
from jobs.outbound.proxy import GuardedProxy, ProxyEvent
from processing.documents.base import DocumentError

# Where the browser's own background services are sent (see the flags): refused by the
# address policy as an IP literal, and told apart from the page's requests in the log.
BROWSER_SERVICES_URL = "http://0.0.0.0"
# Flags for every render. Each closes a way to the network that would skip the proxy or
# starts a background service we do not want in a worker.
CHROMIUM_FLAGS = (
    "--headless",
    # Root in a container has no usable sandbox (no user namespaces): the process tree's
    # bounds and the proxy hold the page instead.
    "--no-sandbox",
    "--disable-gpu",
    # Docker's /dev/shm is 64 MB: shared memory goes to the profile's temp dir instead.
    "--disable-dev-shm-usage",
    "--disable-quic",  # UDP, which the proxy would not see
    "--webrtc-ip-handling-policy=disable_non_proxied_udp",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-breakpad",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--mute-audio",
    # HttpsUpgrades: the page is loaded as given, not first tried over https.
    "--disable-features=MediaRouter,DialMediaRouteProvider,OptimizationHints,Translate,"
    "NetworkTimeServiceQuerying,HttpsUpgrades",
    # Services the flags above do not stop (the component updater's on-demand installs,
    # Google account checks) are pointed at an address the policy refuses without a
    # lookup: they end at the proxy, not at Google.
    f"--component-updater=url-source={BROWSER_SERVICES_URL}/",
    f"--gaia-url={BROWSER_SERVICES_URL}/",
)
# Profile preferences. WebRTC's UDP policy is both a switch and a preference; each alone
# holds in Chromium 156 (tested in a network namespace), both are set so that a rename of
# one in a later version still leaves the other.
_PREFERENCES = {
    "webrtc": {
        "ip_handling_policy": "disable_non_proxied_udp",
        "multiple_routes_enabled": False,
        "nonproxied_udp_enabled": False,
    },
    "download": {"prompt_for_download": False},
    "signin": {"allowed": False, "allowed_on_next_startup": False},
}
_LOCAL_STATE = {
    "component_updates": {"component_updates_enabled": False},
    # Names are never resolved by the browser (host-resolver-rules); no DoH probes either.
    "dns_over_https": {"mode": "off"},
}
_PR_SET_PDEATHSIG = 1
# How often the watchdog sums the browser tree's memory.
_MEMORY_POLL = 0.2
# How long a closing browser gets to end its helpers itself before it is killed.
_CLOSE_GRACE = 1.0
# Profiles live in the temp dir under this prefix; one unlocked this long is a dead render's.
_PROFILE_PREFIX = "jobsite-render-"
_SWEEP_AFTER = 60.0
# The browser's stderr kept for an error message.
_STDERR_TAIL = 2000
_GET_HTML = """(() => {
  const doctype = document.doctype
    ? new XMLSerializer().serializeToString(document.doctype) + "\\n" : "";
  const html = doctype + (document.documentElement ? document.documentElement.outerHTML : "");
  const size = new TextEncoder().encode(html).length;
  return size > %d ? {size, url: location.href} : {html, size, url: location.href};
})()"""


@dataclass(frozen=True)
class Rendered:
    """A rendered page: its DOM as HTML, and what the browser asked for on the way."""

    html: str
    url: str  # as asked
    final_url: str  # after redirects (and whatever the page did to location)
    status: int | None  # the main document's HTTP status, when it had one
    seconds: float
    loaded: bool  # False: the load event never came and the HTML is the page so far
    requests: list[ProxyEvent] = field(default_factory=list)  # the proxy's log, in order
    refused: list[ProxyEvent] = field(default_factory=list)
    bytes_received: int = 0


def chromium_binary(binary: str | None = None) -> str:
    """The Chromium to run: ``binary``, else the ``JOBSITE_CHROMIUM`` setting, else
    ``chromium`` (Debian) or ``chromium-browser`` on the PATH."""
    configured = getattr(settings, "JOBSITE_CHROMIUM", "") if settings.configured else ""
    chosen = binary or configured or os.environ.get("JOBSITE_CHROMIUM", "")
    found = (
        shutil.which(chosen)
        if chosen
        else shutil.which("chromium") or shutil.which("chromium-browser")
    )
    if not found:
        raise DocumentError(
            "render_js needs Chromium: apt-get install chromium"
            + (f" ({chosen!r} was not found)" if chosen else ""),
            code="renderer_missing",
        )
    return found


def render(
    url: str,
    *,
    timeout: float,
    max_bytes: int,
    memory_mb: int,
    allow_hosts: Collection[str] = (),
    max_requests: int = 500,
    settle: float = 3.0,
    images: bool = False,
    binary: str | None = None,
) -> Rendered:
    """Load ``url`` in headless Chromium and return the rendered DOM as HTML.

    Everything is done within ``timeout`` seconds; ``max_bytes`` bounds what all servers
    send together and the HTML returned; ``memory_mb`` the browser's processes together.
    After the load event the page gets up to ``settle`` seconds for its network to go
    quiet (scripts fetching the text). ``images=False`` loads no images: text does not need
    them and they are most of a page's bytes. ``allow_hosts`` as for ``fetch``.
    """
    started = time.monotonic()
    deadline = started + timeout
    original = parse_url(url)
    shown = show_url(original)
    with GuardedProxy(
        timeout=timeout, max_bytes=max_bytes, allow_hosts=allow_hosts, max_requests=max_requests
    ) as proxy:
        # The page's own address first, with fetch's message, before a process starts;
        # the browser's request then reuses this very (checked) answer.
        proxy.check(original, shown=shown)
        browser = _Browser(
            chromium_binary(binary), proxy_url=proxy.url, memory_mb=memory_mb, images=images
        )
        try:
            page = _Page(browser, deadline=deadline, max_bytes=max_bytes, shown=shown)
            result = page.load(str(original), settle=settle)
        except _Timeout:
            raise FetchError(
                f"Rendering {shown} took longer than {timeout:g} seconds",
                code="timeout",
                retryable=True,
            ) from None
        except _BrowserGone:
            browser.close()
            if not browser.over_memory:
                raise DocumentError(
                    f"Chromium stopped while rendering {shown}: {browser.stderr_tail()}",
                    code="renderer_failed",
                    retryable=True,
                ) from None
        finally:
            browser.close()
    # The browser is gone and the proxy closed: its log is final.
    if browser.over_memory:  # also when the watchdog fired after the HTML was read
        raise DocumentError(
            f"Rendering {shown} took more than {memory_mb} MB of memory",
            code="renderer_memory",
        )
    log = proxy.log
    _check_main_document(page, log, original, shown)
    if proxy.over_budget:
        raise FetchError(f"Rendering {shown} needed more than {max_bytes} bytes", code="too_large")
    return Rendered(
        html=result.html,
        url=str(original),
        final_url=result.url,
        status=page.status,
        seconds=time.monotonic() - started,
        loaded=page.loaded,
        requests=log,
        refused=[
            event
            for event in log
            if not event.allowed and not event.target.startswith(BROWSER_SERVICES_URL)
        ],
        bytes_received=proxy.bytes_received,
    )


def _check_main_document(
    page: _Page, log: list[ProxyEvent], original: httpx.URL, shown: str
) -> None:
    """Fail as ``fetch`` would when the page itself (or a hop of its redirects) was refused
    by the proxy, did not load, or answered with an HTTP error."""
    for hop, text in enumerate(page.documents):
        try:
            url = parse_url(text)
        except FetchError:
            continue  # about:blank, data: and such are not fetched
        target = show_url(url)
        host = url.raw_host.decode("ascii")
        # An https page is a CONNECT to host:port, which is all the proxy saw of it.
        bracketed = f"[{host}]" if ":" in host else host
        tunnel = f"{bracketed}:{url.port or 443}" if url.scheme == "https" else None
        for event in log:
            if event.allowed or event.target not in (target, tunnel):
                continue
            hop_shown = target if hop == 0 else f"{target} (redirected from {shown})"
            if event.status != 403:  # a bound of the proxy, not the policy
                raise FetchError(f"Could not render {hop_shown}: {event.reason}", code="too_large")
            reason = event.reason.removeprefix(f"Refusing to fetch {event.target}: ")
            raise FetchError(f"Refusing to fetch {hop_shown}: {reason}", code="url_refused")
    if page.error:
        raise FetchError(
            f"Could not load {shown}: {page.error}", code="connect_error", retryable=True
        )
    status = page.status
    if status is not None and not 200 <= status < 300 and status not in (304,):
        phrase = page.status_text or _phrase(status)
        raise FetchError(
            f"{shown} answered HTTP {status} {phrase}".strip(),
            code="http_error",
            retryable=status in RETRYABLE_STATUSES or status >= 500,
        )


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return ""


# --- the browser process ------------------------------------------------------------------


class _Timeout(Exception):
    """The render's deadline passed while waiting on the browser."""


class _BrowserGone(Exception):
    """The browser closed its end of the pipe: it crashed or was killed."""


@functools.cache
def _prctl() -> Callable[..., int]:
    """libc's prctl, looked up in the parent: the child between fork and exec should do as
    little as possible (other threads' locks are frozen there)."""
    function = ctypes.CDLL(None, use_errno=True).prctl
    function.restype = ctypes.c_int
    return function  # type: ignore[no-any-return]


def _child_setup(parent: int, commands: int, replies: int, data_limit: int) -> None:
    """In the browser's process before exec: die with the worker, drop the job's data
    limit, and put the DevTools pipe where ``--remote-debugging-pipe`` expects it (fd 3
    reads commands, fd 4 writes replies).

    ``PR_SET_PDEATHSIG`` is kept across exec (Chromium is not set-uid): if the worker is
    SIGKILLed, the kernel kills the browser, whose helper processes then exit on their own.
    The soft ``RLIMIT_DATA`` a job runs under (``jobs.runtime.memory_limit``) would be
    inherited by every Chromium process, which maps far more than it uses and crashes
    under a limit of a few GB; the watchdog bounds the browser's memory instead.
    """
    _prctl()(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # the worker died before the line above took effect
        os._exit(1)
    resource.setrlimit(resource.RLIMIT_DATA, (data_limit, data_limit))
    os.dup2(commands, 3)
    os.dup2(replies, 4)


def _high_fd(fd: int) -> int:
    """``fd`` moved to 10 or above (and closed there), so dup2 to 3 and 4 cannot hit it."""
    try:
        return fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, 10)
    finally:
        os.close(fd)


def _running(process: psutil.Process) -> bool:
    """Still running: a zombie is dead (only its exit status waits for its parent)."""
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _naming_the_profile(directory: Path) -> list[psutil.Process]:
    """Our processes that name the profile on their command line: the browser's tree, and
    what is outside it, the crash handlers, which Chromium double-forks into sessions of
    their own (no group kill reaches them) and which outlive a killed browser by seconds.

    (``--disable-crashpad-for-testing`` would not start them, but Chromium 156 then aborts
    most loads.)
    """
    found = []
    uid = os.getuid()
    inside = f"{directory}{os.sep}"  # not a sibling whose name begins with ours
    # A process we may not read has None for what it hides (``ad_value``): not ours.
    for process in psutil.process_iter(["uids", "cmdline"]):
        uids, cmdline = process.info["uids"], process.info["cmdline"] or ()
        if uids is not None and uids.real == uid and any(inside in p for p in cmdline):
            found.append(process)
    return found


def _sweep_profiles() -> None:
    """Remove the profiles of renders whose process died without cleaning up (a worker
    SIGKILLed mid-render: its browser died with it, its directory did not).

    A profile is in use while its lock is held; a young one may not be locked yet.
    """
    for path in Path(tempfile.gettempdir()).glob(_PROFILE_PREFIX + "*"):
        try:
            if time.time() - path.stat().st_mtime < _SWEEP_AFTER:
                continue
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            continue  # a live render's
        else:
            shutil.rmtree(path, ignore_errors=True)
        finally:
            os.close(fd)


def _is_open(fd: int) -> bool:
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


class _Browser:
    """One Chromium process tree with its own profile directory, pipe and watchdog."""

    def __init__(self, binary: str, *, proxy_url: str, memory_mb: int, images: bool) -> None:
        self.memory_mb = memory_mb
        self.over_memory = False
        self.peak_mb = 0.0
        self._seen: dict[int, psutil.Process] = {}
        self._closed = threading.Event()
        self._lock = threading.Lock()
        _sweep_profiles()
        self.directory = Path(tempfile.mkdtemp(prefix=_PROFILE_PREFIX))
        # Held while the profile is in use; a killed worker's lock goes with it, and the
        # next render removes what it left behind (``_sweep_profiles``).
        self._profile_lock = os.open(self.directory, os.O_RDONLY | os.O_CLOEXEC)
        fcntl.flock(self._profile_lock, fcntl.LOCK_EX)
        try:
            self._start(binary, proxy_url, images)
        except BaseException:
            shutil.rmtree(self.directory, ignore_errors=True)
            os.close(self._profile_lock)
            raise
        self._watchdog = threading.Thread(target=self._watch, name="render-memory", daemon=True)
        self._watchdog.start()

    def _start(self, binary: str, proxy_url: str, images: bool) -> None:
        profile = self.directory / "profile"
        (profile / "Default").mkdir(parents=True)
        (profile / "Default" / "Preferences").write_text(json.dumps(_PREFERENCES))
        (profile / "Local State").write_text(json.dumps(_LOCAL_STATE))
        args = [
            binary,
            *CHROMIUM_FLAGS,
            "--remote-debugging-pipe",
            f"--user-data-dir={profile}",
            f"--proxy-server={proxy_url}",
            # Without this, Chromium sends loopback and link-local hosts around the proxy.
            "--proxy-bypass-list=<-loopback>",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
            # V8's heap well under the tree's limit: a runaway script fails in its tab
            # rather than growing until the watchdog kills everything.
            f"--js-flags=--max-old-space-size={max(64, self.memory_mb // 2)}",
        ]
        if not images:
            args.append("--blink-settings=imagesEnabled=false")
        # The first tab opens this, not the distribution's start page (a search engine).
        args.append("about:blank")
        # Nothing of the worker's environment (database URLs, keys): paths and a home.
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.directory),
            "XDG_CONFIG_HOME": str(self.directory / "config"),
            "XDG_CACHE_HOME": str(self.directory / "cache"),
            "TMPDIR": str(self.directory),
            "LANG": "C.UTF-8",
        }
        _prctl()  # looked up here, not in the child
        commands_read, commands_write = (_high_fd(fd) for fd in os.pipe())
        replies_read, replies_write = (_high_fd(fd) for fd in os.pipe())
        # pass_fds=(3, 4) keeps the child's fds 3 and 4 (the pipe, once _child_setup put it
        # there); subprocess insists they be open in this process too.
        placeholders = []
        while not (_is_open(3) and _is_open(4)) and len(placeholders) < 8:
            placeholders.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
        self._stderr = open(self.directory / "stderr.log", "wb")  # noqa: SIM115
        try:
            # S603: the command is our flags and a Chromium binary we looked up; the URL
            # goes over the pipe, never on the command line.
            self.process = subprocess.Popen(  # noqa: S603
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=self._stderr,
                env=env,
                cwd=self.directory,
                start_new_session=True,
                pass_fds=(3, 4),
                preexec_fn=functools.partial(
                    _child_setup,
                    os.getpid(),
                    commands_read,
                    replies_write,
                    resource.getrlimit(resource.RLIMIT_DATA)[1],  # up to the hard limit
                ),
            )
        except OSError as exc:
            for fd in (commands_read, commands_write, replies_read, replies_write):
                os.close(fd)
            self._stderr.close()
            raise DocumentError(
                f"Could not start Chromium ({binary}): {exc}", code="renderer_failed"
            ) from None
        finally:
            for fd in placeholders:
                os.close(fd)
        os.close(commands_read)
        os.close(replies_write)
        self.commands, self.replies = commands_write, replies_read
        self._seen[self.process.pid] = psutil.Process(self.process.pid)

    # --- memory -----------------------------------------------------------------------

    def _tree(self) -> list[psutil.Process]:
        try:
            root = psutil.Process(self.process.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            return []
        with self._lock:
            for process in tree:
                self._seen.setdefault(process.pid, process)
        return tree

    def memory(self) -> float:
        """The tree's memory in MB: PSS (shared pages split between the processes that map
        them; summing RSS would count Chromium's 300 MB binary once per process)."""
        total = 0
        for process in self._tree():
            with contextlib.suppress(psutil.Error):
                info = process.memory_full_info()
                total += getattr(info, "pss", info.rss)
        return total / (1024 * 1024)

    def _watch(self) -> None:
        while not self._closed.wait(_MEMORY_POLL):
            used = self.memory()
            self.peak_mb = max(self.peak_mb, used)
            if used > self.memory_mb:
                self.over_memory = True
                self.kill()
                return

    # --- the end ----------------------------------------------------------------------

    def kill(self) -> None:
        """SIGKILL the process group, every process of the tree ever seen (a helper that
        left the group is still one of ours) and the crash handlers."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        self._tree()
        named = _naming_the_profile(self.directory)
        with self._lock:
            for process in named:
                self._seen.setdefault(process.pid, process)
            seen = list(self._seen.values())
        for process in seen:
            with contextlib.suppress(psutil.Error):
                process.kill()

    def close(self) -> None:
        """End the tree, wait until none of it runs, remove the profile: idempotent.

        ``Browser.close`` first (a browser that closes reaps its own helpers; killed ones
        are left to init as zombies), then SIGKILL for whatever is left, which is all of it
        when the browser is stuck or gone.
        """
        if self._closed.is_set():
            return
        self._closed.set()
        self._tree()
        with contextlib.suppress(_BrowserGone):
            self.send({"id": 0, "method": "Browser.close"})
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(_CLOSE_GRACE)
        self.kill()
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(5)
        with self._lock:
            seen = list(self._seen.values())
        end = time.monotonic() + 2.0
        while any(_running(process) for process in seen) and time.monotonic() < end:
            time.sleep(0.02)
        for fd in (self.commands, self.replies):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._stderr.close()
        self._tail = self._read_tail()
        shutil.rmtree(self.directory, ignore_errors=True)
        os.close(self._profile_lock)

    def _read_tail(self) -> str:
        try:
            with open(self.directory / "stderr.log", "rb") as handle:
                handle.seek(0, os.SEEK_END)
                handle.seek(max(0, handle.tell() - _STDERR_TAIL))
                text = handle.read().decode("utf-8", "replace")
        except OSError:
            return ""
        lines = [line for line in text.splitlines() if line.strip()]
        return lines[-1] if lines else f"exit status {self.process.returncode}"

    def stderr_tail(self) -> str:
        return getattr(self, "_tail", "") or self._read_tail()

    # --- the DevTools pipe ------------------------------------------------------------

    def send(self, message: dict[str, Any]) -> None:
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                written = os.write(self.commands, data)
                data = data[written:]
        except OSError:
            raise _BrowserGone from None

    def read(self, buffer: bytearray, deadline: float, limit: int) -> bytes:
        """More bytes from the browser, waiting until ``deadline`` at most."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Timeout
        ready, _, _ = select.select([self.replies], [], [], remaining)
        if not ready:
            raise _Timeout
        try:
            data = os.read(self.replies, 1 << 20)
        except OSError:
            raise _BrowserGone from None
        if not data:
            raise _BrowserGone
        if len(buffer) + len(data) > limit and b"\0" not in data:
            raise _TooLarge
        return data


class _TooLarge(Exception):
    """A DevTools message longer than the HTML could be."""


@dataclass
class _Html:
    html: str
    url: str


class _Page:
    """One tab driven over the pipe: navigate, follow the main document, read the DOM."""

    def __init__(self, browser: _Browser, *, deadline: float, max_bytes: int, shown: str):
        self.browser = browser
        self.deadline = deadline
        self.max_bytes = max_bytes
        self.shown = shown
        # Long enough for the HTML at its cap, escaped (\\uXXXX) in JSON, and then some.
        self.limit = 6 * max_bytes + (1 << 20)
        self._buffer = bytearray()
        self._next_id = 0
        self._notify_id = 1 << 30
        self.session = ""
        self.frame_id = ""
        self.loader_id = ""
        self.documents: list[str] = []  # the main document's URLs: the first and each hop
        self.status: int | None = None
        self.status_text = ""
        self.error = ""
        # (loaderId, name) of the main frame's lifecycle events: enabling them replays
        # about:blank's, so only the navigation's own loader counts.
        self._lifecycle: set[tuple[str, str]] = set()

    @property
    def loaded(self) -> bool:
        return bool(self.loader_id) and (self.loader_id, "load") in self._lifecycle

    @property
    def idle(self) -> bool:
        return bool(self.loader_id) and (self.loader_id, "networkIdle") in self._lifecycle

    # --- messages -----------------------------------------------------------------------

    def _messages(self, deadline: float) -> Iterator[dict[str, Any]]:
        while True:
            end = self._buffer.find(b"\0")
            if end >= 0:
                raw = bytes(self._buffer[:end])
                del self._buffer[: end + 1]
                yield json.loads(raw)
                continue
            try:
                self._buffer += self.browser.read(self._buffer, deadline, self.limit)
            except _TooLarge:
                raise FetchError(
                    f"The rendered page {self.shown} is larger than {self.max_bytes} bytes",
                    code="too_large",
                ) from None

    def call(
        self, method: str, params: dict[str, Any] | None = None, *, session: bool = True
    ) -> dict[str, Any]:
        """Send a command and wait for its answer (events on the way are handled)."""
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if session and self.session:
            message["sessionId"] = self.session
        self.browser.send(message)
        for reply in self._messages(self.deadline):
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise DocumentError(
                        f"Chromium refused {method}: {reply['error'].get('message', '')}",
                        code="renderer_failed",
                    )
                return reply.get("result", {})
            self._on_event(reply)
        raise AssertionError("unreachable")  # pragma: no cover

    def wait(self, until: Callable[[], bool], deadline: float) -> bool:
        """Handle events until ``until()`` holds (True) or ``deadline`` passes (False)."""
        if until():
            return True
        try:
            for event in self._messages(deadline):
                self._on_event(event)
                if until():
                    return True
        except _Timeout:
            if time.monotonic() >= self.deadline:
                raise
        return False

    def _on_event(self, message: dict[str, Any]) -> None:
        method = message.get("method", "")
        params = message.get("params", {})
        if method == "Network.requestWillBeSent":
            if params.get("type") == "Document" and params.get("frameId") == self.frame_id:
                self.documents.append(params.get("request", {}).get("url", ""))
        elif method == "Network.responseReceived":
            if params.get("type") == "Document" and params.get("frameId") == self.frame_id:
                response = params.get("response", {})
                self.status = response.get("status")
                self.status_text = response.get("statusText", "")
        elif method == "Page.lifecycleEvent" and params.get("frameId") == self.frame_id:
            self._lifecycle.add((params.get("loaderId", ""), params.get("name", "")))
        elif method == "Page.javascriptDialogOpening":
            # alert(), confirm(), onbeforeunload: the page would wait for a click forever.
            self._notify("Page.handleJavaScriptDialog", {"accept": False}, message)

    def _notify(
        self, method: str, params: dict[str, Any], cause: dict[str, Any] | None = None
    ) -> None:
        """Send without waiting for the answer (ids of their own, ignored when they come)."""
        self._notify_id += 1
        sent: dict[str, Any] = {"id": self._notify_id, "method": method, "params": params}
        session = (cause or {}).get("sessionId") or self.session
        if session:
            sent["sessionId"] = session
        self.browser.send(sent)

    # --- the render ---------------------------------------------------------------------

    def load(self, url: str, *, settle: float) -> _Html:
        """Navigate, wait for the load event and then for the network to settle, read the
        DOM. Reading starts ``grace`` before the deadline whatever the page is doing, so a
        page that never finishes loading still gives the HTML it has so far."""
        total = self.deadline - time.monotonic()
        grace = min(2.0, max(0.2, total * 0.2))
        soft = self.deadline - grace
        self.call("Browser.setDownloadBehavior", {"behavior": "deny"}, session=False)
        # The tab the browser opened (about:blank); a new one only if there is none.
        targets = self.call("Target.getTargets", session=False).get("targetInfos", [])
        pages = [info["targetId"] for info in targets if info.get("type") == "page"]
        target = (
            pages[0]
            if pages
            else self.call("Target.createTarget", {"url": "about:blank"}, session=False)["targetId"]
        )
        attached = self.call(
            "Target.attachToTarget", {"targetId": target, "flatten": True}, session=False
        )
        self.session = attached["sessionId"]
        tree = self.call("Page.getFrameTree")
        self.frame_id = tree["frameTree"]["frame"]["id"]
        self.call("Page.enable")
        self.call("Page.setLifecycleEventsEnabled", {"enabled": True})
        self.call("Network.enable")
        navigated = self.call("Page.navigate", {"url": url})
        self.loader_id = navigated.get("loaderId", "")
        if navigated.get("errorText"):
            self.error = navigated["errorText"]
            if url not in self.documents:
                self.documents.insert(0, url)
            return _Html("", url)
        if self.wait(lambda: self.loaded, soft):
            self.wait(lambda: self.idle, min(soft, time.monotonic() + settle))
        answer = self.call(
            "Runtime.evaluate",
            {"expression": _GET_HTML % self.max_bytes, "returnByValue": True},
        )
        value = answer.get("result", {}).get("value") or {}
        if "html" not in value:
            raise FetchError(
                f"The rendered page {self.shown} is larger than {self.max_bytes} bytes",
                code="too_large",
            )
        return _Html(value["html"], value.get("url") or url)
