"""Bounded, SSRF-safe downloads of user-supplied URLs (a job's ``file_url``, later web pages).

The URL comes from whoever submits the job, and the worker runs inside our network, so every
hop (the first request and each redirect) is resolved once, every resolved address is checked
against the address policy (``check_address``), and the connection goes to that checked
address, never to a second DNS answer (DNS rebinding). Time, size and redirects are bounded
for the whole fetch. Failures are ``FetchError`` (a ``JobError``) with a code the Job row can
carry and a message a user can act on.
"""

from __future__ import annotations

import email.message
import email.utils
import functools
import io
import ipaddress
import mimetypes
import os
import re
import socket
import ssl
import threading
import time
import unicodedata
import zlib
from collections.abc import Collection, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import unquote

import httpx
from django.conf import settings

from jobs.errors import JobError

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

USER_AGENT = "jobsite-fetch/0.1"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Worth another attempt later (with any 5xx): the server asked us to come back.
RETRYABLE_STATUSES = frozenset({408, 429})
# Shown URLs are cut to this length so a hostile URL cannot flood the Job row.
MAX_SHOWN_URL = 300

# Checked in order, so the specific reason (metadata) wins over the general one (link-local).
_V4_RULES: tuple[tuple[ipaddress.IPv4Network, str], ...] = tuple(
    (ipaddress.IPv4Network(net), reason)
    for net, reason in (
        ("169.254.169.254/32", "a cloud metadata address"),
        ("100.100.100.200/32", "a cloud metadata address"),
        ("0.0.0.0/32", "an unspecified address"),
        ("0.0.0.0/8", "a reserved address"),  # "this network"
        ("127.0.0.0/8", "a loopback address"),
        ("10.0.0.0/8", "a private address"),
        ("172.16.0.0/12", "a private address"),
        ("192.168.0.0/16", "a private address"),
        ("169.254.0.0/16", "a link-local address"),
        ("100.64.0.0/10", "a shared (carrier-grade NAT) address"),
        ("224.0.0.0/4", "a multicast address"),
        ("255.255.255.255/32", "a broadcast address"),
        ("240.0.0.0/4", "a reserved address"),
        ("192.0.0.0/24", "a reserved address"),  # IETF protocol assignments
        ("192.88.99.0/24", "a reserved address"),  # deprecated 6to4 relay anycast
        ("198.18.0.0/15", "a reserved address"),  # benchmarking
        ("192.0.2.0/24", "a documentation address"),
        ("198.51.100.0/24", "a documentation address"),
        ("203.0.113.0/24", "a documentation address"),
    )
)
_V6_RULES: tuple[tuple[ipaddress.IPv6Network, str], ...] = tuple(
    (ipaddress.IPv6Network(net), reason)
    for net, reason in (
        ("fd00:ec2::254/128", "a cloud metadata address"),
        ("::/128", "an unspecified address"),
        ("::1/128", "a loopback address"),
        ("fc00::/7", "a unique-local address"),
        ("fe80::/10", "a link-local address"),
        ("fec0::/10", "a site-local address"),
        ("ff00::/8", "a multicast address"),
        ("2001:db8::/32", "a documentation address"),
        ("100::/64", "a reserved address"),  # discard-only
        ("64:ff9b:1::/48", "a reserved address"),  # local-use NAT64: translates to anywhere
        ("2001::/23", "a reserved address"),  # IETF protocol assignments, Teredo among them
        ("::/8", "a reserved address"),  # includes the deprecated IPv4-compatible ::a.b.c.d
    )
)
# Forms that carry an IPv4 address inside: judged by the address they carry.
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
_V4_TRANSLATED = ipaddress.IPv6Network("::ffff:0:0:0/96")
# One part of an inet_aton-style IPv4 literal: hex, octal or decimal.
_V4_PART = re.compile(r"0[xX][0-9a-fA-F]*|0[0-7]*|[1-9][0-9]*")


class FetchError(JobError):
    """A download that did not happen. Codes: ``bad_url`` (unparseable, not http(s), with
    credentials), ``url_refused`` (the address policy), ``connect_error`` (DNS, TCP, TLS;
    retryable unless the name does not exist or the certificate is bad), ``timeout``
    (retryable), ``too_large``, ``too_many_redirects``, ``http_error`` (retryable for 5xx,
    408 and 429), ``bad_response`` (a Content-Encoding we cannot undo safely)."""

    code = "fetch_error"


@dataclass(frozen=True)
class FetchResult:
    """What was downloaded: in ``path`` when the caller gave ``dest``, else in ``content``."""

    final_url: str
    status: int
    content_type: str  # the header as sent, "" when there was none
    size: int
    elapsed: float
    filename: str  # a safe base name for the memory's source name
    path: Path | None = None
    content: bytes | None = None

    @property
    def media_type(self) -> str:
        """``text/html`` for ``text/html; charset=utf-8``; "" when the server sent none."""
        if not self.content_type:
            return ""
        return _header("content-type", self.content_type).get_content_type()

    @property
    def charset(self) -> str | None:
        """The declared charset, which HTML and text decoding should prefer to guessing."""
        return _header("content-type", self.content_type).get_content_charset()


# --- the address policy -------------------------------------------------------------------


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address an IP literal stands for, or None for a host name.

    Beyond the standard forms this reads what ``inet_aton`` (and so most resolvers and
    browsers) accepts, such as ``2130706433``, ``0177.0.0.1``, ``0x7f.1``: a literal must
    be judged by the address it will reach, not by how it is spelled.
    """
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        pass
    parts = text.split(".")
    if not 1 <= len(parts) <= 4 or not all(_V4_PART.fullmatch(part) for part in parts):
        return None
    values = [
        int(part[2:] or "0", 16)
        if part[:2].lower() == "0x"
        else int(part, 8)
        if part.startswith("0")
        else int(part)
        for part in parts
    ]
    *head, last = values
    if any(value > 255 for value in head) or last >= 256 ** (5 - len(values)):
        return None
    number = last
    for index, value in enumerate(head):
        number += value << (8 * (3 - index))
    return ipaddress.IPv4Address(number)


def _address_problem(ip: IPAddress) -> str | None:
    """Why ``ip`` may not be fetched from ("a private address"), or None when it is public."""
    if isinstance(ip, ipaddress.IPv6Address):
        embedded = ip.ipv4_mapped or ip.sixtofour
        if embedded is None and (ip in _NAT64 or ip in _V4_TRANSLATED):
            embedded = ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
        if embedded is not None:
            problem = _address_problem(embedded)
            return f"{problem} ({embedded} embedded)" if problem else None
        rules: tuple[tuple[Any, str], ...] = _V6_RULES
    else:
        rules = _V4_RULES
    for network, reason in rules:
        if ip in network:
            return reason
    # Whatever else the standard library knows is not globally reachable.
    return None if ip.is_global else "a non-public address"


def check_address(ip: IPAddress | str) -> None:
    """Raise ``FetchError("url_refused")`` unless ``ip`` is a public unicast address.

    The one place the address policy lives: private, loopback, link-local, cloud metadata,
    carrier-grade NAT, unique-local, multicast, reserved and unspecified addresses are
    refused, and IPv6 forms that embed an IPv4 address (mapped, 6to4, NAT64) are judged by
    the IPv4 address inside. Strings go through ``parse_ip_literal`` first.
    """
    address = parse_ip_literal(ip) if isinstance(ip, str) else ip
    if address is None:
        raise FetchError(f"{ip!r} is not an IP address", code="url_refused")
    problem = _address_problem(address)
    if problem:
        raise FetchError(f"{address} is {problem}", code="url_refused")


@dataclass(frozen=True)
class _Allowed:
    """Host names and addresses let through despite the policy (dev and tests only)."""

    names: frozenset[str]
    addresses: frozenset[IPAddress]

    @classmethod
    def parse(cls, entries: Collection[str]) -> _Allowed:
        names: set[str] = set()
        addresses: set[IPAddress] = set()
        for entry in entries:
            text = entry.strip().lower().rstrip(".")
            address = parse_ip_literal(text)
            if address is not None:
                addresses.add(address)
            elif text:
                names.add(text)
        return cls(frozenset(names), frozenset(addresses))

    def host(self, url: httpx.URL) -> bool:
        return bool({url.host.rstrip("."), _ascii_host(url).rstrip(".")} & self.names)


def allowed_hosts_from_settings() -> tuple[str, ...]:
    """``JOBSITE_FETCH_ALLOW_HOSTS`` ("a,b" or a list) as the ``allow_hosts`` for ``fetch``."""
    raw = getattr(settings, "JOBSITE_FETCH_ALLOW_HOSTS", "") or ""
    items = raw.split(",") if isinstance(raw, str) else raw
    return tuple(item.strip() for item in items if item and item.strip())


# --- URLs and names -----------------------------------------------------------------------


def _ascii_host(url: httpx.URL) -> str:
    return url.raw_host.decode("ascii")


def _show(url: httpx.URL | str) -> str:
    text = str(url)
    return text if len(text) <= MAX_SHOWN_URL else text[: MAX_SHOWN_URL - 3] + "..."


def _parse_url(text: str, *, base: httpx.URL | None = None) -> httpx.URL:
    """The URL to fetch, or ``FetchError("bad_url")``; ``base`` resolves a redirect."""
    try:
        url = base.join(text) if base is not None else httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise FetchError(f"{_show(text)!r} is not a valid URL", code="bad_url") from None
    if url.scheme not in ("http", "https"):
        raise FetchError(
            f"Only http and https URLs can be fetched, not {_show(text)!r}", code="bad_url"
        )
    if not url.host:
        raise FetchError(f"{_show(text)!r} has no host name", code="bad_url")
    if url.port is not None and not 0 < url.port < 65536:
        raise FetchError(f"{_show(text)!r} has an invalid port", code="bad_url")
    # Refused rather than sent: credentials would end up on the Job row, in logs and in the
    # memory's source name, and would follow redirects to other hosts.
    if url.userinfo:
        raise FetchError(
            f"URLs with a user name or password are not accepted "
            f"({_show(url.copy_with(userinfo=b''))})",
            code="bad_url",
        )
    return url


def _header(name: str, value: str) -> email.message.Message:
    message = email.message.Message()
    message[name] = value
    return message


def filename_hint(url: str, content_disposition: str = "", content_type: str = "") -> str:
    """A safe base name for what ``url`` returned: Content-Disposition's file name (RFC 6266,
    ``filename*`` preferred), else the URL's last path segment, else its host; given an
    extension from ``content_type`` when it has none. Never a path: used as a source name."""
    name = ""
    if content_disposition:
        params = (
            _header("content-disposition", content_disposition).get_params(
                header="content-disposition"
            )
            or []
        )
        values = [value for key, value in params if key.lower() == "filename"]
        encoded = [value for value in values if isinstance(value, tuple)]
        chosen = (encoded or values or [""])[0]
        name = email.utils.collapse_rfc2231_value(chosen) if chosen else ""
    name = _clean_name(name)
    parsed = httpx.URL(url)
    if not name:
        name = _clean_name(unquote(parsed.path.rstrip("/").rsplit("/", 1)[-1]))
    if not name:
        name = _clean_name(parsed.host) or "download"
    media_type = _header("content-type", content_type).get_content_type() if content_type else ""
    if not Path(name).suffix and media_type and media_type != "application/octet-stream":
        name += mimetypes.guess_extension(media_type) or ""
    return name


def _clean_name(name: str) -> str:
    """The last path component of ``name`` without control characters or leading dots."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(ch for ch in name if unicodedata.category(ch)[0] != "C").strip()
    name = name.lstrip(".").strip()
    if len(name) > 200:
        suffix = Path(name).suffix[:20]
        name = name[: 200 - len(suffix)] + suffix
    return name


# --- the time budget ----------------------------------------------------------------------


class _Budget:
    """The deadline of one fetch, shared by all its hops."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.started = time.monotonic()
        self.deadline = self.started + seconds
        self.fired = False  # set by a watchdog that cut a connection at the deadline

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def expired(self) -> bool:
        return self.fired or self.remaining() <= 0

    def error(self, shown: str) -> FetchError:
        return FetchError(
            f"Fetching {shown} took longer than {self.seconds:g} seconds",
            code="timeout",
            retryable=True,
        )


class _Watchdog:
    """Shuts the hop's socket down at the deadline.

    httpx timeouts bound each read, not the sum of them: a server that trickles bytes or
    stalls just before the deadline would otherwise overrun it by up to a whole read timeout.
    The socket is captured through httpcore's ``trace`` extension and duplicated, so the
    duplicate still refers to it after TLS wraps (and detaches) the original.
    """

    def __init__(self, budget: _Budget) -> None:
        self._budget = budget
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._timer = threading.Timer(max(0.0, budget.remaining()), self._fire)
        self._timer.daemon = True
        self._timer.start()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        if event != "connection.connect_tcp.complete":
            return
        sock = info["return_value"].get_extra_info("socket")
        if sock is None:
            return
        with self._lock:
            self._sockets.append(sock.dup())
            if self._budget.fired:
                self._shutdown()

    def _fire(self) -> None:
        with self._lock:
            self._budget.fired = True
            self._shutdown()

    def _shutdown(self) -> None:
        for sock in self._sockets:
            with suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def stop(self) -> None:
        self._timer.cancel()
        with self._lock:
            for sock in self._sockets:
                sock.close()
            self._sockets.clear()


# --- resolving and connecting -------------------------------------------------------------


def _resolve(url: httpx.URL, port: int, budget: _Budget, shown: str) -> list[IPAddress]:
    """The addresses of ``url``'s host, once per hop; a literal is its own answer.

    ``getaddrinfo`` has no timeout of its own, so it runs in a daemon thread that is
    abandoned when the budget runs out.
    """
    literal = parse_ip_literal(url.host)
    if literal is not None:
        return [literal]
    host = _ascii_host(url)
    answers: list[tuple[Any, ...]] = []
    errors: list[OSError] = []

    def lookup() -> None:
        try:
            answers.extend(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            errors.append(exc)

    thread = threading.Thread(target=lookup, name="fetch-resolve", daemon=True)
    thread.start()
    thread.join(max(0.0, budget.remaining()))
    if thread.is_alive():
        raise budget.error(shown)
    if errors or not answers:
        error = errors[0] if errors else None
        # EAI_AGAIN is a resolver that did not answer in time; anything else is a name that
        # does not exist, which another attempt will not change.
        retryable = getattr(error, "errno", None) == socket.EAI_AGAIN
        raise FetchError(
            f"Could not resolve {host} for {shown}", code="connect_error", retryable=retryable
        )
    addresses: list[IPAddress] = []
    for _family, _type, _proto, _canonname, sockaddr in answers:
        address = ipaddress.ip_address(sockaddr[0])
        if address not in addresses:
            addresses.append(address)
    return addresses


def _checked_addresses(
    url: httpx.URL, port: int, budget: _Budget, allowed: _Allowed, shown: str
) -> list[IPAddress]:
    """Every address of this hop, each one checked: refusing one refuses the hop."""
    addresses = _resolve(url, port, budget, shown)
    if allowed.host(url):
        return addresses
    for address in addresses:
        if address in allowed.addresses:
            continue
        try:
            check_address(address)
        except FetchError as exc:
            raise FetchError(
                f"Refusing to fetch {shown}: {exc.message}", code="url_refused"
            ) from None
    return addresses


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default verifying context, built once (loading the CA bundle is not free)."""
    return httpx.create_ssl_context()


@contextmanager
def _open(
    url: httpx.URL, *, shown: str, budget: _Budget, allowed: _Allowed, headers: dict[str, str]
) -> Iterator[httpx.Response]:
    """One hop: resolve and check, then GET from a checked address, trying each in turn."""
    port = url.port or (443 if url.scheme == "https" else 80)
    addresses = _checked_addresses(url, port, budget, allowed, shown)
    literal = parse_ip_literal(url.host)
    server_name = str(literal) if literal is not None else _ascii_host(url)
    last_error: httpx.TransportError | None = None
    for address in addresses:
        if budget.expired:
            raise budget.error(shown)
        watchdog = _Watchdog(budget)
        # Pinning: the request goes to the checked IP itself (no second lookup to rebind),
        # while the Host header and the sni_hostname extension (TLS SNI and certificate
        # check) keep the real host name; public httpx API, no custom transport needed.
        request_url = url.copy_with(host=str(address))
        # A client per address and hop: no pooled connection outlives the check it was
        # made under; trust_env=False so no proxy from the environment does its own DNS.
        with httpx.Client(
            verify=_ssl_context(), trust_env=False, timeout=max(budget.remaining(), 0.001)
        ) as client:
            request = client.build_request(
                "GET",
                request_url,
                headers={**headers, "Host": url.netloc.decode("ascii")},
                extensions={"sni_hostname": server_name, "trace": watchdog.trace},
            )
            try:
                response = client.send(request, stream=True)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                watchdog.stop()
                last_error = exc
                continue
            except BaseException:
                watchdog.stop()
                raise
            try:
                yield response
            finally:
                response.close()
                watchdog.stop()
            return
    raise last_error if last_error is not None else budget.error(shown)


def _transport_error(exc: httpx.HTTPError, budget: _Budget, shown: str) -> FetchError:
    """The FetchError for a failure inside httpx, without its traceback in the message."""
    if budget.expired or isinstance(exc, httpx.TimeoutException):
        return budget.error(shown)
    cause: BaseException | None = exc
    for _ in range(10):  # the chain is short; the bound only guards against a cycle
        if cause is None:
            break
        if isinstance(cause, ssl.SSLCertVerificationError):
            return FetchError(
                f"Could not verify the TLS certificate of {shown}: {cause.verify_message}",
                code="connect_error",
                retryable=False,
            )
        cause = cause.__cause__ or cause.__context__
    detail = str(exc) or type(exc).__name__
    return FetchError(f"Could not fetch {shown}: {detail}", code="connect_error", retryable=True)


# --- the body -----------------------------------------------------------------------------


class _Decoder:
    """Undoes a Content-Encoding the server sent although we asked for identity, never
    producing more than ``limit`` bytes per call (no decompression bomb in memory)."""

    def __init__(self, encoding: str, limit: int, shown: str) -> None:
        self.shown = shown
        self.limit = limit
        self.inflater: Any = None
        if encoding in ("gzip", "x-gzip", "deflate"):
            self.inflater = zlib.decompressobj(zlib.MAX_WBITS | 32)  # gzip or zlib, detected
        elif encoding not in ("", "identity"):
            raise FetchError(
                f"{shown} was sent with Content-Encoding {encoding!r}, which is not supported",
                code="bad_response",
            )

    def decode(self, data: bytes) -> Iterator[bytes]:
        if self.inflater is None:
            yield data
            return
        try:
            yield self.inflater.decompress(data, self.limit)
            while self.inflater.unconsumed_tail:
                yield self.inflater.decompress(self.inflater.unconsumed_tail, self.limit)
        except zlib.error:
            raise FetchError(
                f"{self.shown} could not be decompressed", code="bad_response"
            ) from None

    def flush(self) -> bytes:
        return self.inflater.flush() if self.inflater is not None else b""


def _read_body(
    response: httpx.Response, sink: IO[bytes], *, max_bytes: int, budget: _Budget, shown: str
) -> int:
    """Stream the body into ``sink``, refusing it as soon as it passes ``max_bytes``."""
    too_large = FetchError(f"{shown} is larger than {max_bytes} bytes", code="too_large")
    encoding = response.headers.get("content-encoding", "identity").strip().lower()
    length = response.headers.get("content-length", "")
    if encoding in ("", "identity") and length.isdigit() and int(length) > max_bytes:
        raise too_large
    decoder = _Decoder(encoding, max_bytes + 1, shown)
    size = 0

    def take(chunk: bytes) -> None:
        nonlocal size
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        sink.write(chunk)

    for raw in response.iter_raw():
        for chunk in decoder.decode(raw):
            take(chunk)
        if budget.expired:
            raise budget.error(shown)
    # The watchdog's shutdown reads as a clean end of a body delimited by the connection
    # closing: a body that "ended" after the deadline is a cut one, not a complete one.
    if budget.expired:
        raise budget.error(shown)
    take(decoder.flush())
    return size


# --- the entry point ----------------------------------------------------------------------


def fetch(
    url: str,
    *,
    dest: Path | None = None,
    max_bytes: int,
    timeout: float,
    max_redirects: int = 5,
    allow_hosts: Collection[str] = (),
    accept: str | None = None,
) -> FetchResult:
    """GET ``url`` within ``timeout`` seconds in all, at most ``max_bytes`` bytes and
    ``max_redirects`` redirects, each hop checked against the address policy.

    The body goes to ``dest`` (written beside it, then moved into place, so a failed fetch
    leaves nothing behind) or into ``FetchResult.content``. ``allow_hosts`` lets named hosts
    or addresses through the policy, for development and tests
    (``allowed_hosts_from_settings()``).
    """
    budget = _Budget(timeout)
    allowed = _Allowed.parse(allow_hosts)
    original = _parse_url(url)
    current = original
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": accept or "*/*",
        # Compressed bodies could expand past max_bytes inside a single read.
        "Accept-Encoding": "identity",
    }
    for hop in range(max_redirects + 1):
        shown = (
            _show(current) if hop == 0 else f"{_show(current)} (redirected from {_show(original)})"
        )
        try:
            with _open(
                current, shown=shown, budget=budget, allowed=allowed, headers=headers
            ) as response:
                status = response.status_code
                location = response.headers.get("location")
                if status in REDIRECT_STATUSES and location:
                    if hop == max_redirects:
                        raise FetchError(
                            f"{_show(original)} redirected more than {max_redirects} times",
                            code="too_many_redirects",
                        )
                    current = _parse_url(location, base=current)
                    continue
                if not 200 <= status < 300:
                    reason = f"{status} {response.reason_phrase}".strip()
                    raise FetchError(
                        f"{shown} answered HTTP {reason}",
                        code="http_error",
                        retryable=status in RETRYABLE_STATUSES or status >= 500,
                    )
                with _sink(dest) as sink:
                    size = _read_body(
                        response, sink, max_bytes=max_bytes, budget=budget, shown=shown
                    )
                    content = sink.getvalue() if isinstance(sink, io.BytesIO) else None
                content_type = response.headers.get("content-type", "")
                return FetchResult(
                    final_url=str(current),
                    status=status,
                    content_type=content_type,
                    size=size,
                    elapsed=time.monotonic() - budget.started,
                    filename=filename_hint(
                        str(current), response.headers.get("content-disposition", ""), content_type
                    ),
                    path=dest,
                    content=content,
                )
        except httpx.HTTPError as exc:
            raise _transport_error(exc, budget, shown) from None
    raise AssertionError("unreachable: the last hop returns or raises")  # pragma: no cover


@contextmanager
def _sink(dest: Path | None) -> Iterator[IO[bytes]]:
    """Memory, or a partial file beside ``dest`` that replaces it only on success."""
    if dest is None:
        yield io.BytesIO()
        return
    partial = dest.with_name(dest.name + ".part")
    try:
        with partial.open("wb") as handle:
            yield handle
        os.replace(partial, dest)
    finally:
        partial.unlink(missing_ok=True)
