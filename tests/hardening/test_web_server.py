"""The web process under a hostile client: slow heads and bodies, idle sockets by the
thousand, huge headers, chunked bodies. Against the real server (``jobsite.serve``: the
ASGI app under uvicorn with ``jobsite.protocol`` and ``jobsite.intake``), with small limits
so each case is quick; other clients come from other loopback addresses (127.0.0.0/8)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import psutil
import pytest
import requests

from tests.helpers import WebServer

pytestmark = [pytest.mark.worker]

LIMITS = {
    "JOBSITE_ASGI_THREADS": "4",
    "JOBSITE_HEADER_TIMEOUT": "2",
    "JOBSITE_BODY_IDLE_TIMEOUT": "2",
    "JOBSITE_MAX_CONNECTIONS": "300",
    "JOBSITE_MAX_CONNECTIONS_PER_CLIENT": "40",
    "JOBSITE_MAX_UPLOAD_BYTES": str(1024 * 1024),
    "FORWARDED_ALLOW_IPS": "",  # no trusted proxy: every address is counted
}


@pytest.fixture(scope="module")
def server(platform) -> Iterator[WebServer]:
    web = platform.web(**LIMITS)
    yield web
    web.stop()


@pytest.fixture
def guarded(server, live) -> WebServer:
    return server


def connect(server: WebServer, source: str = "127.0.0.1", timeout: float = 10) -> socket.socket:
    return socket.create_connection(
        ("127.0.0.1", server.port), timeout=timeout, source_address=(source, 0)
    )


def answer(sock: socket.socket) -> bytes:
    """What the server sent before closing (or within the socket's timeout)."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


def timed_get(url: str, key: str, source: str = "127.0.0.9") -> tuple[int, float]:
    """A normal client's request, from its own address: status and seconds taken."""
    with requests.Session() as session:
        session.mount("http://", _SourceAdapter(source))
        started = time.monotonic()
        response = session.get(url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        return response.status_code, time.monotonic() - started


class _SourceAdapter(requests.adapters.HTTPAdapter):
    def __init__(self, source: str) -> None:
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        return super().init_poolmanager(*args, **kwargs)


def test_slow_bodies_hold_no_thread_and_others_are_served_at_once(guarded, api, user):
    """Four threads serve the REST API: eight clients each promising a 1,000-byte body and
    sending one byte (four to the admin login with its CSRF cookie, four creating jobs with
    a valid key) used to hold all of them; another user waited 14.5 s (29.5 s to create)."""
    login = requests.get(f"{guarded.url}/admin/login/", timeout=10)
    csrf = login.cookies["csrftoken"]
    slow = []
    for n in range(8):
        sock = connect(guarded, source=f"127.0.0.{20 + n}")
        if n % 2:
            head = (
                f"POST /admin/login/ HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: csrftoken={csrf}\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 1000\r\n\r\n"
            )
        else:
            head = (
                f"POST /api/v1/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {api.api_key}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n"
            )
        sock.sendall(head.encode() + b"{")
        slow.append(sock)
    time.sleep(0.5)  # every slow request is in, waiting for its body
    status, took = timed_get(f"{guarded.url}/api/v1/job-types/", api.api_key)
    assert status == 200 and took < 1.0, f"another user waited {took:.1f} s"
    started = time.monotonic()
    created = requests.post(
        f"{guarded.url}/api/v1/jobs/",
        json={"type": "echo"},
        headers={"Authorization": f"Bearer {api.api_key}"},
        timeout=30,
    )
    assert created.status_code == 202 and time.monotonic() - started < 1.0
    # The slow ones are told why, once their body stops arriving (2 s here).
    for sock in slow:
        assert answer(sock).startswith(b"HTTP/1.1 408 ")
        sock.close()


def test_a_slow_head_is_cut_off_and_an_idle_socket_closed(guarded):
    partial = connect(guarded, source="127.0.0.30")
    partial.sendall(b"GET /api/v1/job-types/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: a")
    idle = connect(guarded, source="127.0.0.31")
    started = time.monotonic()
    assert answer(partial).startswith(b"HTTP/1.1 408 ")
    assert answer(idle) == b""  # closed without a word
    assert 1.5 < time.monotonic() - started < 6
    partial.close()
    idle.close()


def test_idle_sockets_beyond_the_per_client_cap_are_refused_at_once(guarded, api):
    held = [connect(guarded, source="127.0.0.40") for _ in range(40)]
    extra = [connect(guarded, source="127.0.0.40") for _ in range(20)]
    started = time.monotonic()
    for sock in extra:
        assert answer(sock).startswith(b"HTTP/1.1 503 "), "the excess must be refused"
        sock.close()
    assert time.monotonic() - started < 2  # refused on arrival, not at a timeout
    status, took = timed_get(f"{guarded.url}/api/v1/job-types/", api.api_key, "127.0.0.41")
    assert status == 200 and took < 1.0
    for sock in held:
        sock.close()


def test_thousands_of_sockets_never_exhaust_the_process(guarded, api):
    """Past the process's connection cap (300 here) new sockets are refused at once, so its
    open files stay bounded; once the flood ends, everyone is served again."""
    proc = psutil.Process(guarded.proc.pid)
    flood: list[socket.socket] = []
    refused = 0
    for n in range(600):
        sock = connect(guarded, source=f"127.0.1.{n % 200 + 1}")
        flood.append(sock)
    time.sleep(0.5)
    fds = proc.num_fds()
    for sock in flood:
        sock.setblocking(False)
        try:
            if sock.recv(64).startswith(b"HTTP/1.1 503 "):
                refused += 1
        except BlockingIOError:
            pass
    assert refused >= 250, f"only {refused} of 600 refused"
    assert fds < 300 + 100, f"the server held {fds} files"
    for sock in flood:
        sock.close()
    time.sleep(0.5)
    status, _ = timed_get(f"{guarded.url}/api/v1/job-types/", api.api_key, "127.0.0.50")
    assert status == 200


def test_a_huge_header_is_refused_after_its_first_kilobytes(guarded):
    proc = psutil.Process(guarded.proc.pid)
    before = proc.memory_info().rss
    sock = connect(guarded, source="127.0.0.60")
    sock.sendall(b"GET /api/v1/job-types/ HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
    sent = 0
    chunk = b"a" * 65536
    try:
        while sent < 50 * 1024 * 1024:
            sock.sendall(chunk)
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass
    reply = answer(sock)
    sock.close()
    assert sent < 10 * 1024 * 1024, f"the server read {sent} bytes of one header"
    assert reply.startswith(b"HTTP/1.1 431 ") or reply == b""
    assert proc.memory_info().rss - before < 20 * 1024 * 1024


def test_a_chunked_json_create_is_read_like_any_other(guarded, api):
    body = b'{"type": "echo", "params": {"payload": "chunked"}}'
    chunked = b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:10], body[10:]))
    sock = connect(guarded)
    sock.sendall(
        b"POST /api/v1/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        + f"Authorization: Bearer {api.api_key}\r\n".encode()
        + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n"
        + chunked
        + b"0\r\n\r\n"
    )
    reply = answer(sock)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 202 "), reply[:300]
    assert b'"payload":"chunked"' in reply.replace(b" ", b"")


def test_a_chunked_upload_stops_at_the_size_limit(guarded, api):
    sock = connect(guarded)
    sock.sendall(
        b"POST /api/v1/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        + f"Authorization: Bearer {api.api_key}\r\n".encode()
        + b"Content-Type: multipart/form-data; boundary=xx\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    part = b"x" * 65536
    replied = threading.Event()

    def send() -> None:
        try:
            for _ in range(64):  # 4 MB, the limit is 1 MB
                if replied.is_set():
                    return
                sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
        except OSError:
            pass

    sender = threading.Thread(target=send)
    sender.start()
    reply = answer(sock)
    replied.set()
    sender.join(10)
    sock.close()
    assert reply.startswith(b"HTTP/1.1 413 "), reply[:300]
