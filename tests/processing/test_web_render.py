"""``processing.web.render``: ``render_js`` in real headless Chromium (Debian's package).

The pages are served on loopback. Most tests serve them as ``page.test`` (allowed by name,
resolved by the test's DNS table to 127.0.0.1), so 127.0.0.1 itself and every other
spelling of loopback stay refused and belong to the address matrix. The ``net`` guard
(``tests.netguard``) refuses and records any connection this process (the proxy) makes
off loopback; what the browser process itself tries is traced in an isolated network
namespace by the last test. Outside CI the tests skip when Chromium is missing
(``tests.browser``).
"""

from __future__ import annotations

import fcntl
import ipaddress
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from jobs.errors import JobError
from jobs.outbound import FetchError, fetch
from jobs.runtime import memory_limit
from processing.documents.base import DocumentError
from processing.web import render as render_module
from processing.web.render import Rendered, render
from tests import netguard
from tests.browser import chromium_path
from tests.helpers import ROOT
from tests.netguard import Net, guarded_network
from tests.origin import Origin, OriginHandler, redirect_to_query, serving, trickle

pytestmark = pytest.mark.services_free

net = netguard.net  # the autouse guard, for every test in this module

SCRIPT_TEXT = "Written by a script from JSON, nowhere in the HTML the server sent."
# The address matrix as the page spells it; Chromium normalises some spellings
# (2130706433, 0177.0.0.1 and 127.1 become 127.0.0.1) before they reach the proxy.
MATRIX_HOSTS = [
    "127.0.0.1",
    "localhost",
    "[::1]",
    "0.0.0.0",
    "10.0.0.1",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "100.64.0.1",
    "[fc00::1]",
    "[fe80::1]",
    "[::ffff:127.0.0.1]",
    "2130706433",
    "0177.0.0.1",
    "127.1",
]
# Names resolving (in the test's DNS table) to each address of the matrix.
MATRIX_NAMES = {
    f"n{index}.test": address
    for index, address in enumerate(
        [
            "127.0.0.1",
            "::1",
            "0.0.0.0",
            "10.0.0.1",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ]
    )
}
KINDS = ["img", "script", "frame", "fetch", "redirect"]


def script_text_page(handler: OriginHandler) -> None:
    handler.html(
        "<!DOCTYPE html><html><head><title>Scripted</title></head><body><main><h1>Report</h1>"
        '<p id="text">Loading...</p></main><script>'
        "fetch('/data.json').then((r) => r.json()).then((d) => {"
        "  document.getElementById('text').textContent = d.text; });"
        "</script></body></html>"
    )


def data_json(handler: OriginHandler) -> None:
    # Escaped, so that not even the JSON holds the sentence as plain bytes.
    body = json.dumps({"text": SCRIPT_TEXT}).replace("a", "\\u0061")
    handler.reply(200, body, Content_Type="application/json")


def matrix_page(handler: OriginHandler) -> None:
    """Every matrix address as an image, a script, a frame, a fetch() and a redirect's
    target, and a name resolving to each; the page's own text is written by a script."""
    port = handler.server.port
    parts = ['<html><body><p id="own">static</p>']
    for index, host in enumerate(MATRIX_HOSTS):
        base = f"http://{host}:{port}/x"
        parts.append(
            f'<img src="{base}/img-{index}"><script src="{base}/script-{index}"></script>'
            f'<iframe src="{base}/frame-{index}"></iframe>'
            f'<script src="/to?{base}/redirect-{index}"></script>'
            f'<script>fetch("{base}/fetch-{index}").catch(() => 0)</script>'
        )
    for name in MATRIX_NAMES:
        parts.append(f'<script src="http://{name}:{port}/x/name-{name}"></script>')
    parts.append(f'<script src="https://10.0.0.1:{port}/x/tls"></script>')
    parts.append(
        f'<script>new WebSocket("ws://192.168.7.7:{port}/x/ws");'
        f'new EventSource("http://[fd00:ec2::254]:{port}/x/sse");</script>'
    )
    parts.append(
        "<script>document.getElementById('own').textContent = 'The page rendered.'</script>"
        "</body></html>"
    )
    handler.html("".join(parts))


def loop_page(handler: OriginHandler) -> None:
    handler.html("<p>busy</p><script>while (true) {}</script>")


def hog_page(handler: OriginHandler) -> None:
    """Grows by 64 MB every 50 ms, outside V8's heap (typed arrays), until stopped."""
    handler.html(
        "<p>hog</p><script>const kept = []; setInterval(() => {"
        " const block = new Uint8Array(64 * 1024 * 1024); block.fill(1); kept.push(block);"
        "}, 50);</script>"
    )


def alert_page(handler: OriginHandler) -> None:
    handler.html(
        "<p id='t'>before</p><script>alert('hi'); confirm('sure?');"
        "document.getElementById('t').textContent = 'after the dialogs';</script>"
    )


ROUTES = {
    "/script-text": script_text_page,
    "/data.json": data_json,
    "/matrix": matrix_page,
    "/to": redirect_to_query,
    "/loop": loop_page,
    "/slow": trickle,
    "/hog": hog_page,
    "/alert": alert_page,
}


@pytest.fixture(scope="module")
def chromium() -> str:
    return chromium_path()


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serving(ROUTES) as server:
        yield server


@pytest.fixture
def page_test(net: Net) -> str:
    net.dns["page.test"] = ["127.0.0.1"]
    return "page.test"


@pytest.fixture
def browsers(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every browser a render starts in this test (its pid and profile directory)."""
    started: list[Any] = []

    class Recorded(render_module._Browser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            started.append(self)

    monkeypatch.setattr(render_module, "_Browser", Recorded)
    return started


def running_with(directory: str) -> list[psutil.Process]:
    """Processes (zombies aside: they are dead) whose command line names ``directory``."""
    found = []
    for process in psutil.process_iter(["cmdline", "status"]):
        if process.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if any(directory in part for part in process.info["cmdline"] or ()):
            found.append(process)
    return found


def assert_gone(browsers: list[Any]) -> None:
    assert browsers, "no browser was started"
    for browser in browsers:
        assert running_with(str(browser.directory)) == []
        assert not Path(browser.directory).exists()


def render_page(url: str, **kwargs: Any) -> Rendered:
    options: dict[str, Any] = {
        "timeout": 20,
        "max_bytes": 5_000_000,
        "memory_mb": 2048,
        "allow_hosts": ["page.test"],
    }
    return render(url, **{**options, **kwargs})


# --- rendering --------------------------------------------------------------------------------


def test_a_page_whose_text_only_scripts_write_is_rendered(
    chromium: str, origin: Origin, net: Net, browsers: list[Any]
) -> None:
    """Served on 127.0.0.1 and allowing exactly that, as a development setup would."""
    url = origin.url("/script-text")
    rendered = render_page(url, allow_hosts=["127.0.0.1"])

    assert SCRIPT_TEXT in rendered.html
    assert rendered.html.startswith("<!DOCTYPE html>")
    assert (rendered.url, rendered.final_url, rendered.status) == (url, url, 200)
    assert rendered.loaded and 0 < rendered.seconds < 20
    assert rendered.refused == []
    fetched = {event.target: event for event in rendered.requests}
    assert fetched[url].allowed and fetched[origin.url("/data.json")].status == 200
    assert rendered.bytes_received == sum(event.bytes for event in rendered.requests)
    # Every request of the browser came through the proxy: the server saw only proxied ones.
    assert {seen.path for seen in origin.seen} <= {"/script-text", "/data.json", "/favicon.ico"}
    assert net.outside == []
    assert_gone(browsers)


def test_the_rendered_page_is_extracted(chromium: str, origin: Origin, page_test: str) -> None:
    extract = pytest.importorskip("processing.web.extract")
    url = origin.url("/script-text", host="page.test")
    rendered = render_page(url)
    page = extract.extract_page(rendered.html, url=rendered.final_url)

    assert SCRIPT_TEXT in page.text()


def test_the_job_s_data_limit_is_not_the_browser_s(
    chromium: str, origin: Origin, page_test: str
) -> None:
    """Jobs run under a soft RLIMIT_DATA (``jobs.runtime.memory_limit``); every Chromium
    process would inherit it and crash under it. The browser is held by ``memory_mb``."""
    with memory_limit(1024):
        rendered = render_page(origin.url("/script-text", host="page.test"))
    assert SCRIPT_TEXT in rendered.html


def test_dialogs_do_not_hold_the_page(chromium: str, origin: Origin, page_test: str) -> None:
    rendered = render_page(origin.url("/alert", host="page.test"), timeout=10)
    assert "after the dialogs" in rendered.html and rendered.loaded


# --- the address matrix, from inside the page ---------------------------------------------------


@pytest.fixture(scope="module")
def matrix(chromium: str) -> Iterator[tuple[Rendered, Origin, Net]]:
    """One render of the matrix page, shared by the assertions below."""
    with pytest.MonkeyPatch.context() as monkeypatch, guarded_network(monkeypatch) as guard:
        guard.dns["page.test"] = ["127.0.0.1"]
        guard.dns["localhost"] = ["127.0.0.1"]
        for name, address in MATRIX_NAMES.items():
            guard.dns[name] = [address]
        with serving(ROUTES) as server:
            rendered = render_page(
                server.url("/matrix", host="page.test"),
                timeout=40,
                memory_mb=6144,
                images=True,
            )
            yield rendered, server, guard


def events_for(rendered: Rendered, marker: str) -> list[Any]:
    """The requests for the URL ending ``marker`` (not a redirect naming it in its query)."""
    return [
        event
        for event in rendered.requests
        if event.target.endswith(marker) and "/to?" not in event.target
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("index", range(len(MATRIX_HOSTS)), ids=MATRIX_HOSTS)
def test_every_matrix_address_is_refused_for_every_kind_of_request(
    matrix: tuple[Rendered, Origin, Net], index: int, kind: str
) -> None:
    rendered, _server, _guard = matrix
    events = events_for(rendered, f"/x/{kind}-{index}")
    assert events, f"the browser never asked the proxy for {kind} {MATRIX_HOSTS[index]}"
    assert all(not event.allowed and event.status == 403 for event in events), events


@pytest.mark.parametrize("name", MATRIX_NAMES)
def test_a_name_resolving_to_each_matrix_address_is_refused(
    matrix: tuple[Rendered, Origin, Net], name: str
) -> None:
    rendered, _server, guard = matrix
    [event] = events_for(rendered, f"/x/name-{name}")
    assert not event.allowed and event.status == 403
    assert f": {ipaddress.ip_address(MATRIX_NAMES[name])} is " in event.reason
    assert guard.lookups.count(name) == 1  # resolved once, by the proxy; never by Chromium


def test_the_matrix_page_itself_renders_and_nothing_left_loopback(
    matrix: tuple[Rendered, Origin, Net],
) -> None:
    rendered, server, guard = matrix
    assert "The page rendered." in rendered.html
    assert rendered.status == 200
    # https and a WebSocket: CONNECTs, refused before any tunnel; an event stream.
    for target in (f"10.0.0.1:{server.port}", f"192.168.7.7:{server.port}"):
        connects = [e for e in rendered.requests if e.target == target]
        assert connects and all(e.method == "CONNECT" and not e.allowed for e in connects)
    [stream] = events_for(rendered, "/x/sse")
    assert not stream.allowed and "a cloud metadata address" in stream.reason
    # Nothing refused reached the server (every matrix URL points at its port), and the
    # proxy connected to nothing off loopback.
    assert not [path for path in server.paths if path.startswith("/x/")]
    assert guard.outside == []
    allowed = {event.target.split("/")[2] for event in rendered.requests if event.allowed}
    assert allowed == {f"page.test:{server.port}"}


# --- the page itself refused, failing, or never done ----------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.1/report",
        "http://169.254.169.254/latest/meta-data/",
        "http://internal.test/",
        "http://2130706433/",
        "http://[::ffff:127.0.0.1]/",
        "https://192.168.1.1/",
    ],
)
def test_a_refused_page_fails_like_fetch_and_starts_no_browser(
    net: Net, browsers: list[Any], url: str
) -> None:
    net.dns["internal.test"] = ["10.1.2.3"]
    with pytest.raises(FetchError) as rendering:
        render_page(url, binary="/no/such/chromium")  # the URL is judged first
    with pytest.raises(FetchError) as fetching:
        fetch(url, max_bytes=1000, timeout=5)

    assert rendering.value.code == fetching.value.code == "url_refused"
    assert rendering.value.message == fetching.value.message
    assert rendering.value.message.startswith(f"Refusing to fetch {url}: ")
    assert browsers == []
    assert net.connects == []


def test_a_page_redirected_to_a_refused_address_fails(
    chromium: str, origin: Origin, page_test: str, browsers: list[Any]
) -> None:
    target = f"http://10.0.0.1:{origin.port}/x/secret"
    start = origin.url(f"/to?{target}", host="page.test")
    with pytest.raises(FetchError) as exc:
        render_page(start)

    assert exc.value.code == "url_refused"
    assert exc.value.message == (
        f"Refusing to fetch {target} (redirected from {start}): 10.0.0.1 is a private address"
    )
    assert_gone(browsers)


def test_an_http_error_page_fails(chromium: str, origin: Origin, page_test: str) -> None:
    url = origin.url("/missing", host="page.test")
    with pytest.raises(FetchError) as exc:
        render_page(url)
    assert exc.value.code == "http_error" and exc.value.retryable is False
    assert exc.value.message == f"{url} answered HTTP 404 Not Found"


def test_a_script_that_never_stops_is_cut_at_the_timeout(
    chromium: str, origin: Origin, page_test: str, browsers: list[Any]
) -> None:
    url = origin.url("/loop", host="page.test")
    started = time.monotonic()
    with pytest.raises(FetchError) as exc:
        render_page(url, timeout=5)
    elapsed = time.monotonic() - started

    assert exc.value.code == "timeout" and exc.value.retryable is True
    assert exc.value.message == f"Rendering {url} took longer than 5 seconds"
    assert elapsed < 5 + 2.5
    assert_gone(browsers)


def test_a_page_that_never_finishes_loading_gives_what_it_has(
    chromium: str, origin: Origin, page_test: str, browsers: list[Any]
) -> None:
    started = time.monotonic()
    rendered = render_page(origin.url("/slow", host="page.test"), timeout=5)

    assert time.monotonic() - started < 5 + 1
    assert rendered.loaded is False
    assert "The start of a page that never ends." in rendered.html
    assert_gone(browsers)


def test_a_page_over_the_memory_limit_is_killed(
    chromium: str, origin: Origin, page_test: str, browsers: list[Any]
) -> None:
    # The page grows until it is killed, within seconds on a quiet machine; the long
    # timeout is for a loaded one, where 30 s once ran out first.
    with pytest.raises(DocumentError) as exc:
        render_page(origin.url("/hog", host="page.test"), timeout=120, memory_mb=900)

    assert exc.value.code == "renderer_memory"
    assert "took more than 900 MB of memory" in exc.value.message
    assert browsers[0].peak_mb > 900
    assert_gone(browsers)


def test_a_page_over_the_byte_budget_fails(chromium: str, origin: Origin, page_test: str) -> None:
    with pytest.raises(FetchError) as exc:
        render_page(origin.url("/script-text", host="page.test"), max_bytes=300)
    assert exc.value.code == "too_large"


def test_the_browser_dies_with_its_worker(chromium: str) -> None:
    """SIGKILL the process that renders: PR_SET_PDEATHSIG takes the browser with it, and
    its helpers follow."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tests.processing.render_child", "orphan"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = child.stdout.readline() if child.stdout else ""
        browser = json.loads(line)
        deadline = time.monotonic() + 20
        while len(running_with(browser["directory"])) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)  # the browser and its helpers are up
        assert psutil.pid_exists(browser["pid"])
        assert len(running_with(browser["directory"])) >= 3
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    deadline = time.monotonic() + 10
    while running_with(browser["directory"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert running_with(browser["directory"]) == []
    # Nobody was left to remove the profile: the next render's sweep does, once it is old.
    profile = Path(browser["directory"])
    assert profile.exists()
    render_module._sweep_profiles()
    assert profile.exists()  # young: perhaps a render that has not locked it yet
    old = time.time() - 120
    os.utime(profile, (old, old))
    render_module._sweep_profiles()
    assert not profile.exists()


def test_a_killed_browser_takes_its_crash_handlers_with_it(chromium: str) -> None:
    """Chromium double-forks its crash handlers into sessions of their own: no group kill
    and no walk of the tree reaches them, and after a SIGKILL they outlive the browser by
    seconds. The kill finds them by the profile on their command line."""
    browser = render_module._Browser(
        chromium, proxy_url="http://127.0.0.1:9", memory_mb=900, images=False
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            tree = {process.pid for process in browser._tree()}
            named = render_module._naming_the_profile(browser.directory)
            if handlers := [process for process in named if process.pid not in tree]:
                break
            assert time.monotonic() < deadline, "no crash handler started"
            time.sleep(0.1)
        assert all("crashpad" in process.name() for process in handlers)
        for process in handlers:  # a loaded machine, where they would not get to run
            process.suspend()
        browser.kill()  # as the memory watchdog does
    finally:
        browser.close()
        left = running_with(str(browser.directory))
        for process in left:
            process.kill()
    assert left == []


def test_the_sweep_spares_profiles_in_use(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    live, dead, young = (tmp_path / f"jobsite-render-{name}" for name in ("a", "b", "c"))
    old = time.time() - 120
    for path in (live, dead, young):
        path.mkdir()
        (path / "profile").mkdir()
    for path in (live, dead):
        os.utime(path, (old, old))
    held = os.open(live, os.O_RDONLY)
    try:
        fcntl.flock(held, fcntl.LOCK_EX)
        render_module._sweep_profiles()
    finally:
        os.close(held)
    assert live.exists() and young.exists() and not dead.exists()


# --- no Chromium, no URL --------------------------------------------------------------------


def test_missing_chromium_says_how_to_install_it(net: Net) -> None:
    with pytest.raises(DocumentError) as exc:
        render_page("http://8.8.8.8/", binary="/no/such/chromium")
    assert exc.value.code == "renderer_missing"
    assert exc.value.message.startswith("render_js needs Chromium: apt-get install chromium")
    assert isinstance(exc.value, JobError)


@pytest.mark.parametrize("url", ["ftp://example.com/", "file:///etc/passwd", "not a url"])
def test_bad_urls_are_refused_before_anything_starts(
    net: Net, browsers: list[Any], url: str
) -> None:
    with pytest.raises(FetchError) as exc:
        render_page(url)
    assert exc.value.code == "bad_url"
    assert browsers == [] and net.connects == [] and net.lookups == []


# --- what the browser process itself sends ---------------------------------------------------


def _isolation_problem() -> str:
    if os.geteuid() != 0:
        return "needs root to make a network namespace"
    for tool in ("unshare", "ip", "strace"):
        if shutil.which(tool) is None:
            return f"needs {tool}"
    return ""


def test_in_an_isolated_network_the_browser_sends_only_to_the_proxy(
    chromium: str, tmp_path: Path
) -> None:
    """The browser under strace, in a network namespace of its own with a private address
    (10.0.0.5 on a veth pair that leads nowhere): every TCP connection it opens goes to the
    proxy, it sends no UDP at all (WebRTC's STUN/TURN to 10.0.0.1 and mDNS included), and
    the page still renders. A UDP ``connect`` sends nothing: Chromium uses it to ask the
    kernel for a route (to 8.8.8.8 or 2001:4860:4860::8888) without a packet."""
    problem = _isolation_problem()
    if problem:
        pytest.skip(problem)
    log = tmp_path / "strace.log"
    script = (
        "ip link set lo up && ip link add v0 type veth peer name v1 && "
        "ip addr add 10.0.0.5/8 dev v0 && ip link set v0 up && ip link set v1 up && "
        f'exec "{sys.executable}" -m tests.processing.render_child isolated {log}'
    )
    done = subprocess.run(
        ["unshare", "--net", "sh", "-c", script],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip("no network namespace here: " + done.stderr.strip()[-200:])
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])

    assert "candidates:[]" in results["webrtc"]["html"]  # gathered nothing: no UDP path
    assert "<p>matrix</p>" in results["matrix"]["html"]
    assert all(
        not allowed
        for _method, target, allowed in results["matrix"]["log"]
        if "/x/" in target and "/to?" not in target
    )
    assert results["outside"] == []
    assert not [path for path in results["origin_paths"] if path.startswith("/x/")]

    tcp, udp_sends, other = [], [], []
    for line in log.read_text().splitlines():
        if "AF_INET" not in line:
            continue
        if line.split("(", 1)[0].split()[-1] == "connect" and "<TCP" in line:
            tcp.append(line)
        elif "<UDP" in line and "connect(" not in line:
            udp_sends.append(line)
        elif "connect(" not in line:
            other.append(line)
    proxy_ports = {line.split("htons(", 1)[1].split(")", 1)[0] for line in tcp}
    assert tcp, "the browser opened no TCP connection at all"
    assert all('inet_addr("127.0.0.1")' in line for line in tcp), tcp
    assert str(results["origin_port"]) not in proxy_ports  # never straight to the server
    assert len(proxy_ports) == 2  # one proxy per render, nothing else
    assert udp_sends == [] and other == []
