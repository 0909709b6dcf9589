"""``jobs.outbound``: the address policy, pinning, and the time/size/redirect bounds.

Every test here sends packets to loopback only: the autouse ``net`` fixture
(``tests.netguard``) fails any connection elsewhere and answers DNS from a table (numeric
hosts aside), so a regression that would reach a private address or the resolver shows up
as a recorded attempt, not as traffic.
"""

from __future__ import annotations

import gzip
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from jobs.errors import JobError
from jobs.outbound import (
    FetchError,
    allowed_hosts_from_settings,
    check_address,
    fetch,
    filename_hint,
    parse_ip_literal,
)
from jobs.outbound import client as client_module
from tests import netguard
from tests.netguard import Net

pytestmark = pytest.mark.services_free

net = netguard.net  # the autouse guard, for every test in this module

LOCAL = ["127.0.0.1"]


# --- a local server -------------------------------------------------------------------------------


FILE_BODY = b"hello, file\n" * 100
BIG = 5_000_000


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: LocalServer

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on ``server.requests`` instead."""

    def reply(self, status: int, body: bytes = b"", **headers: str) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        self.server.requests.append((self.path, self.headers.get("Host", "")))
        stop = self.server.stop
        path = self.path
        try:
            if path == "/file.txt":
                self.reply(200, FILE_BODY, Content_Type="text/plain; charset=utf-8")
            elif path == "/download":
                self.reply(
                    200,
                    b"%PDF-1.4 fake",
                    Content_Type="application/pdf",
                    Content_Disposition="attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
                )
            elif path == "/host":
                self.reply(200, self.headers.get("Host", "").encode(), Content_Type="text/plain")
            elif path.startswith("/redirect/"):
                left = int(path.rsplit("/", 1)[1])
                target = f"/redirect/{left - 1}" if left > 1 else "/file.txt"
                self.reply(302, Location=target)
            elif path.startswith("/slow-redirect/"):
                stop.wait(0.4)
                left = int(path.rsplit("/", 1)[1])
                self.reply(302, Location=f"/slow-redirect/{left - 1}" if left > 1 else "/file.txt")
            elif path == "/loop":
                self.reply(302, Location="/loop")
            elif path.startswith("/to?"):
                self.reply(302, Location=path.split("?", 1)[1])
            elif path == "/slow":
                # A byte every 50 ms, forever: every read is quick, the whole never ends.
                self.send_response(200)
                self.send_header("Connection", "close")
                self.end_headers()
                while not stop.wait(0.05):
                    self.wfile.write(b"x")
                    self.wfile.flush()
            elif path == "/late-stall":
                stop.wait(0.6)
                self.send_response(200)
                self.send_header("Content-Length", "100")
                self.end_headers()
                self.wfile.write(b"x")
                self.wfile.flush()
                stop.wait(10)
            elif path == "/big-chunked":
                self.send_response(200)
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                chunk = b"y" * 65536
                for _ in range(BIG // len(chunk)):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                self.wfile.write(b"0\r\n\r\n")
            elif path == "/big-length":
                # Declares 10 MB, then sends nothing: only an early refusal ends quickly.
                self.send_response(200)
                self.send_header("Content-Length", str(10_000_000))
                self.end_headers()
                self.wfile.flush()
                stop.wait(10)
            elif path == "/gzip":
                self.reply(200, gzip.compress(FILE_BODY), Content_Encoding="gzip")
            elif path == "/gzip-bomb":
                self.reply(200, gzip.compress(b"\0" * BIG), Content_Encoding="gzip")
            elif path == "/404":
                self.reply(404, b"nope")
            elif path == "/503":
                self.reply(503, b"busy")
            else:
                self.reply(404)
        except (BrokenPipeError, ConnectionResetError):
            pass


class LocalServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.requests: list[tuple[str, str]] = []
        self.stop = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hang up (the fetcher does, on purpose); loud otherwise."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [path for path, _host in self.requests]


@pytest.fixture
def server() -> Iterator[LocalServer]:
    srv = LocalServer()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield srv
    finally:
        srv.stop.set()
        srv.shutdown()
        srv.server_close()
        thread.join(5)


@pytest.fixture
def tls_server(server: LocalServer, tmp_path: Path) -> Iterator[tuple[LocalServer, Path, list]]:
    """The local server behind TLS with a self-signed certificate for ``files.example`` only
    (no IP in it), recording the SNI names clients send."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a test certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    command = ["openssl", "req", "-x509", "-newkey", "ec", "-nodes", "-days", "1"]
    command += ["-pkeyopt", "ec_paramgen_curve:prime256v1", "-subj", "/CN=files.example"]
    command += ["-addext", "subjectAltName=DNS:files.example"]
    command += ["-keyout", str(key), "-out", str(cert)]
    subprocess.run(
        command,
        check=True,
        capture_output=True,
    )
    names: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.sni_callback = lambda _sock, name, _ctx: names.append(name)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield server, cert, names


def refused(exc: pytest.ExceptionInfo[FetchError], code: str) -> str:
    assert isinstance(exc.value, JobError)
    assert exc.value.code == code
    assert "Traceback" not in exc.value.message
    return exc.value.message


# --- fetching from the local server ---------------------------------------------------------------


def test_fetches_a_file_from_an_allowed_host(server: LocalServer) -> None:
    result = fetch(server.url("/file.txt"), max_bytes=10_000, timeout=5, allow_hosts=LOCAL)

    assert result.content == FILE_BODY
    assert result.size == len(FILE_BODY)
    assert result.status == 200
    assert result.final_url == server.url("/file.txt")
    assert result.media_type == "text/plain"
    assert result.charset == "utf-8"
    assert result.filename == "file.txt"
    assert result.path is None
    assert 0 < result.elapsed < 5
    assert server.requests == [("/file.txt", f"127.0.0.1:{server.port}")]


def test_writes_to_dest_and_leaves_no_partial_file(server: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "doc.bin"
    result = fetch(
        server.url("/download"), dest=dest, max_bytes=10_000, timeout=5, allow_hosts=LOCAL
    )

    assert result.path == dest and result.content is None
    assert dest.read_bytes() == b"%PDF-1.4 fake"
    assert result.filename == "résumé.pdf"
    assert result.media_type == "application/pdf"
    assert list(tmp_path.iterdir()) == [dest]


def test_a_failed_fetch_leaves_no_file(server: LocalServer, tmp_path: Path) -> None:
    dest = tmp_path / "big.bin"
    with pytest.raises(FetchError):
        fetch(server.url("/big-chunked"), dest=dest, max_bytes=1000, timeout=5, allow_hosts=LOCAL)
    assert list(tmp_path.iterdir()) == []


def test_loopback_is_refused_before_any_connection(server: LocalServer, net: Net) -> None:
    with pytest.raises(FetchError) as exc:
        fetch(server.url("/file.txt"), max_bytes=10_000, timeout=5)

    message = refused(exc, "url_refused")
    assert (
        message == f"Refusing to fetch {server.url('/file.txt')}: 127.0.0.1 is a loopback address"
    )
    assert server.requests == []
    assert net.connects_to(server.port) == []


@pytest.mark.parametrize("host", ["localhost", "2130706433", "0x7f.1", "127.1", "[::1]"])
def test_loopback_in_any_spelling_is_refused(server: LocalServer, net: Net, host: str) -> None:
    net.dns["localhost"] = ["127.0.0.1"]
    with pytest.raises(FetchError) as exc:
        fetch(server.url("/file.txt", host=host), max_bytes=10_000, timeout=5)

    assert "loopback address" in refused(exc, "url_refused")
    assert net.connects_to(server.port) == []


def test_follows_a_redirect_chain(server: LocalServer) -> None:
    result = fetch(server.url("/redirect/3"), max_bytes=10_000, timeout=5, allow_hosts=LOCAL)

    assert result.content == FILE_BODY
    assert result.final_url == server.url("/file.txt")
    assert server.paths == ["/redirect/3", "/redirect/2", "/redirect/1", "/file.txt"]


def test_too_many_redirects(server: LocalServer) -> None:
    with pytest.raises(FetchError) as exc:
        fetch(server.url("/loop"), max_bytes=10_000, timeout=5, max_redirects=3, allow_hosts=LOCAL)

    assert "more than 3 times" in refused(exc, "too_many_redirects")
    assert server.paths == ["/loop"] * 4


def test_slow_endless_response_hits_the_time_budget(server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch(server.url("/slow"), max_bytes=10_000_000, timeout=1.0, allow_hosts=LOCAL)

    assert "took longer than 1 seconds" in refused(exc, "timeout")
    assert exc.value.retryable is True
    assert time.monotonic() - started < 1.5


def test_the_deadline_covers_a_stall_after_a_slow_start(server: LocalServer) -> None:
    """Headers at 0.6 s, then silence: per-read timeouts alone would end at about 1.6 s."""
    started = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch(server.url("/late-stall"), max_bytes=10_000, timeout=1.0, allow_hosts=LOCAL)

    refused(exc, "timeout")
    assert time.monotonic() - started < 1.4


def test_the_deadline_spans_all_redirects(server: LocalServer) -> None:
    """Each hop answers in 0.4 s, well inside any per-request timeout; four of them do not."""
    started = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch(server.url("/slow-redirect/4"), max_bytes=10_000, timeout=1.0, allow_hosts=LOCAL)

    refused(exc, "timeout")
    assert time.monotonic() - started < 1.4
    assert len(server.requests) == 3


def test_big_chunked_response_is_cut_at_the_cap(server: LocalServer) -> None:
    with pytest.raises(FetchError) as exc:
        fetch(server.url("/big-chunked"), max_bytes=100_000, timeout=5, allow_hosts=LOCAL)

    assert "is larger than 100000 bytes" in refused(exc, "too_large")
    assert exc.value.retryable is False


def test_big_content_length_is_refused_before_reading(server: LocalServer) -> None:
    started = time.monotonic()
    with pytest.raises(FetchError) as exc:
        fetch(server.url("/big-length"), max_bytes=100_000, timeout=5, allow_hosts=LOCAL)

    refused(exc, "too_large")
    assert time.monotonic() - started < 1


def test_gzip_sent_anyway_is_decoded(server: LocalServer) -> None:
    result = fetch(server.url("/gzip"), max_bytes=10_000, timeout=5, allow_hosts=LOCAL)
    assert result.content == FILE_BODY


def test_gzip_bomb_is_cut_at_the_cap(server: LocalServer) -> None:
    with pytest.raises(FetchError) as exc:
        fetch(server.url("/gzip-bomb"), max_bytes=100_000, timeout=5, allow_hosts=LOCAL)
    refused(exc, "too_large")


@pytest.mark.parametrize(("path", "retryable"), [("/404", False), ("/503", True)])
def test_http_errors(server: LocalServer, path: str, retryable: bool) -> None:
    with pytest.raises(FetchError) as exc:
        fetch(server.url(path), max_bytes=10_000, timeout=5, allow_hosts=LOCAL)

    assert f"answered HTTP {path[1:]}" in refused(exc, "http_error")
    assert exc.value.retryable is retryable


def test_connection_refused_is_a_retryable_connect_error() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(FetchError) as exc:
        fetch(f"http://127.0.0.1:{port}/", max_bytes=10, timeout=5, allow_hosts=LOCAL)

    refused(exc, "connect_error")
    assert exc.value.retryable is True


# --- the policy on every hop ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "is a cloud metadata address"),
        ("http://[::ffff:10.0.0.1]/", "a private address (10.0.0.1 embedded)"),
        ("http://0x0a000001/", "10.0.0.1 is a private address"),
        ("http://internal.example/", "10.1.2.3 is a private address"),
    ],
)
def test_a_redirect_to_a_private_address_is_refused_at_the_hop(
    server: LocalServer, net: Net, target: str, reason: str
) -> None:
    net.dns["internal.example"] = ["10.1.2.3"]
    start = server.url(f"/to?{target}")
    with pytest.raises(FetchError) as exc:
        fetch(start, max_bytes=10_000, timeout=5, allow_hosts=LOCAL)

    message = refused(exc, "url_refused")
    assert message.startswith(f"Refusing to fetch {target} (redirected from {start}): ")
    assert reason in message
    assert server.paths == [f"/to?{target}"]
    assert net.outside == []
    assert net.connects_to(server.port) == [("127.0.0.1", server.port)]


def test_a_name_resolving_to_a_private_address_is_refused(net: Net) -> None:
    net.dns["internal.example"] = ["10.1.2.3"]
    with pytest.raises(FetchError) as exc:
        fetch("http://internal.example/report.pdf", max_bytes=10_000, timeout=5)

    assert refused(exc, "url_refused").endswith(": 10.1.2.3 is a private address")
    assert net.lookups == ["internal.example"]
    assert net.connects == []


def test_one_private_address_among_public_ones_refuses_the_host(net: Net) -> None:
    net.dns["mixed.example"] = ["93.184.216.34,fd00::1"]
    with pytest.raises(FetchError) as exc:
        fetch("https://mixed.example/", max_bytes=10_000, timeout=5)

    assert "fd00::1 is a unique-local address" in refused(exc, "url_refused")
    assert net.connects == []


def test_a_redirect_to_an_allowed_name_connects_to_its_checked_address(
    server: LocalServer, net: Net
) -> None:
    net.dns["files.example"] = ["127.0.0.1"]
    target = server.url("/host", host="files.example")
    result = fetch(
        server.url(f"/to?{target}"),
        max_bytes=10_000,
        timeout=5,
        allow_hosts=["127.0.0.1", "FILES.example"],
    )

    assert result.final_url == target
    assert result.content == f"files.example:{server.port}".encode()


def test_https_to_the_pinned_address_keeps_sni_and_certificate_checks_on_the_name(
    tls_server: tuple[LocalServer, Path, list], net: Net, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The connection goes to 127.0.0.1, yet the certificate (which names only
    files.example) verifies: SNI and the hostname check used the URL's host name."""
    server, cert, sni_names = tls_server
    monkeypatch.setattr(
        client_module, "_ssl_context", lambda: ssl.create_default_context(cafile=str(cert))
    )
    net.dns["files.example"] = ["127.0.0.1"]
    url = f"https://files.example:{server.port}/host"
    result = fetch(url, max_bytes=10_000, timeout=5, allow_hosts=["files.example"])

    assert result.content == f"files.example:{server.port}".encode()
    assert sni_names == ["files.example"]
    assert net.connects_to(server.port) == [("127.0.0.1", server.port)]


def test_https_with_an_untrusted_certificate_is_a_permanent_connect_error(
    tls_server: tuple[LocalServer, Path, list], net: Net
) -> None:
    server, _cert, _names = tls_server
    net.dns["files.example"] = ["127.0.0.1"]
    with pytest.raises(FetchError) as exc:
        fetch(
            f"https://files.example:{server.port}/host",
            max_bytes=10_000,
            timeout=5,
            allow_hosts=["files.example"],
        )

    assert "Could not verify the TLS certificate" in refused(exc, "connect_error")
    assert exc.value.retryable is False
    assert server.requests == []


def test_dns_rebinding_connects_to_the_address_that_was_checked(
    server: LocalServer, net: Net
) -> None:
    """The name answers 127.0.0.1 once and 10.0.0.1 afterwards: exactly one look-up happens
    and the connection goes to the address it returned, with the Host header kept."""
    net.dns["rebind.example"] = ["127.0.0.1", "10.0.0.1"]
    result = fetch(
        server.url("/host", host="rebind.example"),
        max_bytes=10_000,
        timeout=5,
        allow_hosts=["rebind.example"],
    )

    assert result.content == f"rebind.example:{server.port}".encode()
    assert server.requests == [("/host", f"rebind.example:{server.port}")]
    assert net.lookups.count("rebind.example") == 1
    assert net.outside == []


# --- URLs -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.com/file",
        "file:///etc/passwd",
        "javascript:alert(1)",
        "not a url",
        "http://",
        "http:///path",
        "http://[::1",
        "http://example.com:99999/",
        "http://0177.0.0.1/",  # httpx refuses leading zeros in a dotted quad
        "//example.com/no-scheme",
    ],
)
def test_bad_urls(net: Net, url: str) -> None:
    with pytest.raises(FetchError) as exc:
        fetch(url, max_bytes=10, timeout=5)
    refused(exc, "bad_url")
    assert net.connects == [] and net.lookups == []


def test_credentials_in_the_url_are_refused_and_not_echoed(net: Net) -> None:
    with pytest.raises(FetchError) as exc:
        fetch("http://alice:s3cret@example.com/doc.pdf", max_bytes=10, timeout=5)

    message = refused(exc, "bad_url")
    assert "s3cret" not in message and "alice" not in message
    assert net.connects == []


# --- the address policy, pure ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "reason"),
    [
        ("10.0.0.1", "private"),
        ("172.16.5.4", "private"),
        ("172.31.255.255", "private"),
        ("192.168.1.1", "private"),
        ("127.0.0.1", "loopback"),
        ("127.255.255.254", "loopback"),
        ("::1", "loopback"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("fe80::1%eth0", "link-local"),
        ("169.254.169.254", "cloud metadata"),
        ("fd00:ec2::254", "cloud metadata"),
        ("100.100.100.200", "cloud metadata"),
        ("100.64.0.1", "carrier-grade NAT"),
        ("100.127.255.255", "carrier-grade NAT"),
        ("fc00::1", "unique-local"),
        ("fd12:3456::1", "unique-local"),
        ("224.0.0.1", "multicast"),
        ("239.255.255.250", "multicast"),
        ("ff02::1", "multicast"),
        ("240.0.0.1", "reserved"),
        ("255.255.255.255", "broadcast"),
        ("0.0.0.0", "unspecified"),
        ("0.1.2.3", "reserved"),
        ("::", "unspecified"),
        ("192.0.2.1", "documentation"),
        ("2001:db8::1", "documentation"),
        ("fec0::1", "site-local"),
        ("2001::1", "reserved"),  # Teredo
        ("::127.0.0.1", "reserved"),  # deprecated IPv4-compatible
        # IPv6 forms judged by the IPv4 address they carry.
        ("::ffff:127.0.0.1", "loopback address (127.0.0.1 embedded)"),
        ("::ffff:10.0.0.1", "private address (10.0.0.1 embedded)"),
        ("::ffff:169.254.169.254", "cloud metadata address (169.254.169.254 embedded)"),
        ("2002:7f00:1::", "loopback address (127.0.0.1 embedded)"),  # 6to4
        ("2002:a9fe:a9fe::1", "cloud metadata address (169.254.169.254 embedded)"),
        ("64:ff9b::10.0.0.1", "private address (10.0.0.1 embedded)"),  # NAT64
        ("64:ff9b:1::1", "reserved"),  # local-use NAT64
        # Odd literal spellings, normalised by parse_ip_literal.
        ("2130706433", "loopback"),
        ("0177.0.0.1", "loopback"),
        ("0x7f.0.0.1", "loopback"),
        ("0x7f000001", "loopback"),
        ("127.1", "loopback"),
        ("0x0a.0.1", "private"),
        ("012.0.0.1", "private"),
        ("167772161", "private"),
        ("0xa9.254.169.254", "cloud metadata"),
        ("0", "unspecified"),
        ("[::1]", "loopback"),
    ],
)
def test_check_address_refuses(address: str, reason: str) -> None:
    with pytest.raises(FetchError) as exc:
        check_address(address)
    assert reason in refused(exc, "url_refused")


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "93.184.216.34",
        "172.32.0.1",  # just past 172.16/12
        "100.128.0.1",  # just past 100.64/10
        "2606:4700:4700::1111",
        "2a00:1450:4001::200e",
        "::ffff:8.8.8.8",
        "2002:808:808::1",
        "64:ff9b::8.8.8.8",
        "134744072",  # 8.8.8.8 as one number
    ],
)
def test_check_address_allows_public_addresses(address: str) -> None:
    check_address(address)
    parsed = parse_ip_literal(address)
    assert parsed is not None
    check_address(parsed)


@pytest.mark.parametrize(
    ("literal", "expected"),
    [
        ("2130706433", "127.0.0.1"),
        ("0177.0.0.1", "127.0.0.1"),
        ("0x7f.0.0.1", "127.0.0.1"),
        ("0X7F.1", "127.0.0.1"),
        ("127.1", "127.0.0.1"),
        ("10.1.258", "10.1.1.2"),
        ("0x", "0.0.0.0"),
        ("[::ffff:127.0.0.1]", "::ffff:7f00:1"),
        ("::1", "::1"),
        ("example.com", None),
        ("08.0.0.1", None),  # 8 is not an octal digit
        ("256.0.0.1", None),
        ("1.2.3.4.5", None),
        ("1.2.3.256", None),
        ("4294967296", None),
        ("1.2.3.4 ", None),
        ("", None),
    ],
)
def test_parse_ip_literal(literal: str, expected: str | None) -> None:
    parsed = parse_ip_literal(literal)
    assert (str(parsed) if parsed is not None else None) == expected


# --- names and settings ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "disposition", "content_type", "expected"),
    [
        ("http://x.example/a/report.pdf", "", "", "report.pdf"),
        ("http://x.example/a/b%20c.pdf?x=1", "", "", "b c.pdf"),
        ("http://x.example/dl", 'attachment; filename="q3.xlsx"', "", "q3.xlsx"),
        (
            "http://x.example/dl",
            "attachment; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
            "",
            "résumé.pdf",
        ),
        (
            "http://x.example/dl",
            "attachment; filename=\"fallback.pdf\"; filename*=UTF-8''real.pdf",
            "",
            "real.pdf",
        ),
        ("http://x.example/dl", 'attachment; filename="../../etc/passwd"', "", "passwd"),
        ("http://x.example/dl", 'attachment; filename="..\\\\evil.txt"', "", "evil.txt"),
        ("http://x.example/dl", 'attachment; filename=".hidden"', "", "hidden"),
        ("http://x.example/page", "", "text/html; charset=utf-8", "page.html"),
        ("http://x.example/", "", "", "x.example"),
        ("http://x.example/blob", "", "application/octet-stream", "blob"),
    ],
)
def test_filename_hint(url: str, disposition: str, content_type: str, expected: str) -> None:
    assert filename_hint(url, disposition, content_type) == expected


def test_allowed_hosts_from_settings(settings: Any) -> None:
    settings.JOBSITE_FETCH_ALLOW_HOSTS = " 127.0.0.1, files.local ,,"
    assert allowed_hosts_from_settings() == ("127.0.0.1", "files.local")
    settings.JOBSITE_FETCH_ALLOW_HOSTS = ""
    assert allowed_hosts_from_settings() == ()
