"""``jobs.outbound.proxy``: the render proxy alone, driven by plain HTTP clients.

Every address of the matrix is refused as an absolute-form request, as a CONNECT tunnel,
as a redirect's target and as a name that resolves to it, and the bounds (bytes, requests,
connections, idle time, the deadline) hold. Packets go to loopback only: the ``net`` guard
(``tests.netguard``) refuses and records any other connection and answers DNS from a table.
"""

from __future__ import annotations

import http.client
import json
import socket
import threading
import time
from collections.abc import Iterator

import httpx
import pytest

from jobs.outbound.proxy import GuardedProxy
from tests import netguard
from tests.netguard import Net
from tests.origin import Origin, OriginHandler, redirect_to_query, serving, trickle

pytestmark = pytest.mark.services_free

net = netguard.net  # the autouse guard, for every test in this module

BIG = 200_000
# The address matrix: each host as a URL spells it, and the address a name would resolve to.
MATRIX = [
    ("127.0.0.1", "127.0.0.1"),
    ("localhost", "127.0.0.1"),
    ("[::1]", "::1"),
    ("0.0.0.0", "0.0.0.0"),
    ("10.0.0.1", "10.0.0.1"),
    ("172.16.0.1", "172.16.0.1"),
    ("172.31.255.254", "172.31.255.254"),
    ("192.168.1.1", "192.168.1.1"),
    ("169.254.169.254", "169.254.169.254"),
    ("100.64.0.1", "100.64.0.1"),
    ("[fc00::1]", "fc00::1"),
    ("[fd12:3456::1]", "fd12:3456::1"),
    ("[fe80::1]", "fe80::1"),
    ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1"),
    ("2130706433", "127.0.0.1"),
    ("0177.0.0.1", "127.0.0.1"),
    ("127.1", "127.0.0.1"),
]
HOSTS = [host for host, _address in MATRIX]
# Names for the "resolves to" cases: one per distinct address.
NAMED = {f"n{index}.test": address for index, (_host, address) in enumerate(MATRIX)}


def routes() -> dict:
    def page(handler: OriginHandler) -> None:
        handler.html("<p>hello</p>")

    def big(handler: OriginHandler) -> None:
        handler.reply(200, b"x" * BIG, Content_Type="application/octet-stream")

    def chunked(handler: OriginHandler) -> None:
        handler.send_response(200)
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()
        for part in (b"one,", b"two,", b"three"):
            handler.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        handler.wfile.write(b"0\r\n\r\n")

    def echo(handler: OriginHandler) -> None:
        seen = handler.server.seen[-1]
        handler.reply(
            200,
            json.dumps({"body": seen.body.decode(), "headers": seen.headers}),
            Content_Type="application/json",
        )

    return {
        "/page": page,
        "/big": big,
        "/chunked": chunked,
        "/echo": echo,
        "/to": redirect_to_query,
        "/slow": trickle,
    }


@pytest.fixture
def origin() -> Iterator[Origin]:
    with serving(routes()) as server:
        yield server


@pytest.fixture
def page_test(net: Net) -> str:
    """``page.test``: an allowed name for the loopback server (127.0.0.1 itself is not)."""
    net.dns["page.test"] = ["127.0.0.1"]
    net.dns["localhost"] = ["127.0.0.1"]
    net.dns.update({name: [address] for name, address in NAMED.items()})
    return "page.test"


def proxy_for(**kwargs) -> GuardedProxy:
    options = {"timeout": 10.0, "max_bytes": 1_000_000, "allow_hosts": ["page.test"]}
    return GuardedProxy(**{**options, **kwargs})


def get(proxy: GuardedProxy, url: str, *, method: str = "GET", body: bytes | None = None):
    """One absolute-form request, sent as written (no client rewrites the target)."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
    host = url.split("/")[2]
    conn.request(method, url, body=body, headers={"Host": host})
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, data


def connect(proxy: GuardedProxy, authority: str) -> tuple[int, bytes, socket.socket]:
    """A CONNECT; the status, the rest of the answer's head and body, and the socket."""
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    sock.sendall(f"CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head else 0
    return status, head, sock


def refused_events(proxy: GuardedProxy) -> list:
    return [event for event in proxy.log if not event.allowed]


# --- what passes ----------------------------------------------------------------------------


def test_an_allowed_loopback_page_passes(origin: Origin, net: Net) -> None:
    with proxy_for(allow_hosts=["127.0.0.1"]) as proxy, httpx.Client(proxy=proxy.url) as client:
        response = client.get(origin.url("/page"))

    assert response.status_code == 200 and response.text == "<p>hello</p>"
    assert origin.seen[0].host == f"127.0.0.1:{origin.port}"
    [event] = proxy.log
    assert (event.method, event.target, event.allowed, event.status) == (
        "GET",
        origin.url("/page"),
        True,
        200,
    )
    assert event.bytes == len("<p>hello</p>")
    assert net.outside == []


def test_a_tunnel_to_an_allowed_host_carries_bytes_both_ways(
    origin: Origin, page_test: str
) -> None:
    with proxy_for() as proxy:
        status, _head, sock = connect(proxy, f"page.test:{origin.port}")
        assert status == 200
        sock.sendall(b"GET /page HTTP/1.1\r\nHost: page.test\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        sock.close()

    assert data.startswith(b"HTTP/1.1 200") and data.endswith(b"<p>hello</p>")
    [event] = proxy.log
    assert (event.method, event.target, event.allowed) == (
        "CONNECT",
        "page.test:" + str(origin.port),
        True,
    )
    assert event.bytes == len(data)


def test_headers_and_bodies_are_forwarded_and_hop_headers_are_not(
    origin: Origin, page_test: str
) -> None:
    with proxy_for() as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request(
            "POST",
            origin.url("/echo", host="page.test"),
            body=b"a=1",
            headers={
                "Host": f"page.test:{origin.port}",
                "Content-Type": "application/x-www-form-urlencoded",
                "Cookie": "session=abc",
                "Proxy-Authorization": "Basic secret",
                "Proxy-Connection": "keep-alive",
                "Connection": "keep-alive, X-Drop",
                "X-Drop": "me",
            },
        )
        response = conn.getresponse()
        answer = json.loads(response.read())
        conn.close()

    assert answer["body"] == "a=1"
    sent = {name.lower(): value for name, value in answer["headers"].items()}
    assert sent["host"] == f"page.test:{origin.port}"
    assert sent["cookie"] == "session=abc"
    assert "proxy-authorization" not in sent and "proxy-connection" not in sent
    assert "x-drop" not in sent


def test_a_chunked_answer_reaches_the_client_whole(origin: Origin, page_test: str) -> None:
    with proxy_for() as proxy:
        status, body = get(proxy, origin.url("/chunked", host="page.test"))
    assert (status, body) == (200, b"one,two,three")


def test_each_host_is_resolved_once_and_its_checked_answer_reused(origin: Origin, net: Net) -> None:
    """The name answers 127.0.0.1 first and 10.0.0.1 afterwards (rebinding): one lookup,
    every request pinned to the checked answer."""
    net.dns["rebind.test"] = ["127.0.0.1", "10.0.0.1"]
    with proxy_for(allow_hosts=["127.0.0.1"]) as proxy:
        first = get(proxy, origin.url("/page", host="rebind.test"))
        second = get(proxy, origin.url("/page", host="rebind.test"))
        status, _head, sock = connect(proxy, f"rebind.test:{origin.port}")
        sock.close()

    assert first[0] == second[0] == status == 200
    assert net.lookups.count("rebind.test") == 1
    assert net.outside == []


# --- the address matrix ---------------------------------------------------------------------


@pytest.mark.parametrize("host", HOSTS)
def test_the_matrix_is_refused_as_absolute_form(
    origin: Origin, page_test: str, net: Net, host: str
) -> None:
    target = f"http://{host}:{origin.port}/secret"
    with proxy_for() as proxy:
        status, body = get(proxy, target)

    assert status in (400, 403), body  # 400: a spelling no URL parser accepts (0177.0.0.1)
    assert b"Refused by the render proxy" in body
    [event] = proxy.log
    assert event.allowed is False and event.status == status
    assert origin.seen == []
    assert net.connects_to(origin.port) == [] and net.outside == []


@pytest.mark.parametrize("host", HOSTS)
def test_the_matrix_is_refused_as_connect(
    origin: Origin, page_test: str, net: Net, host: str
) -> None:
    with proxy_for() as proxy:
        status, head, sock = connect(proxy, f"{host}:{origin.port}")
        sock.close()

    assert status in (400, 403), head
    [event] = proxy.log
    assert (event.method, event.allowed) == ("CONNECT", False)
    assert origin.seen == []
    assert net.connects_to(origin.port) == [] and net.outside == []


@pytest.mark.parametrize("host", HOSTS)
def test_a_redirect_to_the_matrix_is_refused_at_the_hop(
    origin: Origin, page_test: str, net: Net, host: str
) -> None:
    """The proxy passes the 302 on; the client's next request is checked like the first."""
    target = f"http://{host}:{origin.port}/secret"
    start = origin.url(f"/to?{target}", host="page.test")
    with proxy_for() as proxy, httpx.Client(proxy=proxy.url) as client:
        try:
            response = client.get(start, follow_redirects=True)
            final = response.status_code
        except httpx.HTTPError:  # httpx itself refuses some spellings (0177.0.0.1)
            final = None

    assert final in (400, 403, None)
    assert [seen.path for seen in origin.seen] == [f"/to?{target}"]
    assert [event.allowed for event in proxy.log] in ([True], [True, False])
    assert proxy.log[0].status == 302
    assert net.connects_to(origin.port) == [("127.0.0.1", origin.port)]
    assert net.outside == []


@pytest.mark.parametrize(("name", "address"), NAMED.items())
def test_a_name_resolving_to_the_matrix_is_refused(
    origin: Origin, page_test: str, net: Net, name: str, address: str
) -> None:
    with proxy_for() as proxy:
        status, body = get(proxy, f"http://{name}:{origin.port}/secret")
        tunnel, _head, sock = connect(proxy, f"{name}:{origin.port}")
        sock.close()

    assert status == tunnel == 403
    assert body.decode().startswith(f"Refused by the render proxy: Refusing to fetch http://{name}")
    assert [event.allowed for event in proxy.log] == [False, False]
    assert net.lookups.count(name) == 1  # the refusal is remembered, not looked up again
    assert origin.seen == []
    assert net.connects_to(origin.port) == [] and net.outside == []


def test_one_private_answer_among_public_ones_refuses_the_name(net: Net) -> None:
    net.dns["mixed.test"] = ["93.184.216.34,10.0.0.7"]
    with proxy_for() as proxy:
        status, body = get(proxy, "http://mixed.test/")
    assert status == 403 and b"10.0.0.7 is a private address" in body
    assert net.connects == [("127.0.0.1", proxy.port)]


def test_a_reused_connection_checks_every_request(origin: Origin, page_test: str) -> None:
    """Keep-alive: the second request on the same browser connection is checked too."""
    with proxy_for() as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", origin.url("/page", host="page.test"), headers={"Host": "page.test"})
        first = conn.getresponse()
        first.read()
        conn.request("GET", "http://10.0.0.1/", headers={"Host": "10.0.0.1"})
        second = conn.getresponse()
        body = second.read()
        conn.close()

    assert (first.status, second.status) == (200, 403)
    assert b"10.0.0.1 is a private address" in body


def test_origin_form_requests_are_refused(origin: Origin) -> None:
    """Someone talking to the proxy as if it were a web server gets nothing forwarded."""
    with proxy_for(allow_hosts=["127.0.0.1"]) as proxy:
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=5)
        conn.request("GET", "/page")
        response = conn.getresponse()
        response.read()
    assert response.status == 400
    assert origin.seen == []


# --- the bounds -----------------------------------------------------------------------------


def test_the_byte_budget_cuts_a_response_and_refuses_what_follows(
    origin: Origin, page_test: str
) -> None:
    with proxy_for(max_bytes=50_000) as proxy:
        with pytest.raises(http.client.IncompleteRead):
            get(proxy, origin.url("/big", host="page.test"))
        after = get(proxy, origin.url("/page", host="page.test"))

    assert proxy.over_budget
    first, second = proxy.log
    assert "over the byte budget of 50000 bytes" in first.reason
    assert first.bytes <= 50_000 + 65_536
    assert after[0] == 503 and second.allowed is False


def test_the_byte_budget_cuts_a_tunnel(origin: Origin, page_test: str) -> None:
    with proxy_for(max_bytes=50_000) as proxy:
        status, _head, sock = connect(proxy, f"page.test:{origin.port}")
        assert status == 200
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: page.test\r\n\r\n")
        received = 0
        while chunk := sock.recv(65536):
            received += len(chunk)
        sock.close()

    assert received < BIG
    assert "over the byte budget" in proxy.log[0].reason


def test_the_request_limit(origin: Origin, page_test: str) -> None:
    with proxy_for(max_requests=2) as proxy:
        answers = [get(proxy, origin.url("/page", host="page.test"))[0] for _ in range(3)]
        status, _head, sock = connect(proxy, f"page.test:{origin.port}")
        sock.close()

    assert answers == [200, 200, 503] and status == 503
    assert proxy.log[2].reason == "over the limit of 2 requests"
    assert len(origin.seen) == 2


def test_the_connection_limit(origin: Origin, page_test: str) -> None:
    with proxy_for(max_connections=2) as proxy:
        held = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(2)]
        time.sleep(0.2)  # both accepted and waiting for a request line
        extra = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        answer = extra.recv(1000)
        for sock in [*held, extra]:
            sock.close()
    assert answer.startswith(b"HTTP/1.1 503 Too many connections")


def test_an_idle_connection_and_an_idle_tunnel_are_closed(origin: Origin, page_test: str) -> None:
    with proxy_for(idle_timeout=0.3) as proxy:
        idle = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        status, _head, tunnel = connect(proxy, f"page.test:{origin.port}")
        started = time.monotonic()
        assert idle.recv(100) == b""
        assert tunnel.recv(100) == b""
        waited = time.monotonic() - started
        idle.close()
        tunnel.close()
    assert status == 200
    assert 0.2 < waited < 2
    assert proxy.log[0].reason == "idle too long"


def test_the_deadline_cuts_a_response_that_never_ends(origin: Origin, page_test: str) -> None:
    started = time.monotonic()
    with proxy_for(timeout=1.0) as proxy:
        with pytest.raises((http.client.IncompleteRead, ConnectionError, TimeoutError)):
            get(proxy, origin.url("/slow", host="page.test"))
        late = get(proxy, origin.url("/page", host="page.test"))
    assert time.monotonic() - started < 2.5
    assert late[0] == 503  # turned away at the door: no request read, none logged
    assert len(proxy.log) == 1 and proxy.log[0].reason == "cut at the deadline"


def test_closing_the_proxy_cuts_what_is_in_flight(origin: Origin, page_test: str) -> None:
    """A long poll still open when the render ends does not keep a thread for the rest of
    the deadline: close() cuts the upstream request too."""
    proxy = proxy_for(timeout=60.0).__enter__()
    outcome: list[object] = []

    def slow_client() -> None:
        try:
            outcome.append(get(proxy, origin.url("/slow", host="page.test")))
        except Exception as exc:
            outcome.append(exc)

    thread = threading.Thread(target=slow_client)
    thread.start()
    time.sleep(0.5)
    started = time.monotonic()
    proxy.close()
    closed_in = time.monotonic() - started
    thread.join(5)

    assert closed_in < 1.5
    assert not thread.is_alive() and outcome
    assert not [t for t in threading.enumerate() if t.name.startswith("render-proxy")]


def test_a_request_body_over_the_limit_is_refused(origin: Origin, page_test: str) -> None:
    with proxy_for(max_request_body=10) as proxy:
        status, _body = get(
            proxy, origin.url("/echo", host="page.test"), method="POST", body=b"x" * 11
        )
    assert status == 413 and origin.seen == []
