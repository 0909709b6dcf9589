"""The guarded GET (and a webhook's POST): each hop resolved once, checked, and pinned to
the checked address.

Resolving a name, checking the answer and then letting the HTTP library resolve it again
would leave a window for DNS rebinding, so the connection goes to the very address that
passed ``check_address`` while the Host header, TLS SNI and the certificate check keep the
real name. Redirects are hops like the first one: parsed, resolved, checked and pinned.
"""

from __future__ import annotations

import email.message
import email.utils
import functools
import io
import ipaddress
import mimetypes
import socket
import ssl
import threading
import time
import unicodedata
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import httpx

from jobs.outbound.addresses import (
    AllowedHosts,
    IPAddress,
    ascii_host,
    check_address,
    parse_ip_literal,
)
from jobs.outbound.bounds import Budget, Watchdog, open_sink, read_body
from jobs.outbound.errors import FetchError

USER_AGENT = "jobsite-fetch/0.1"
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
# Worth another attempt later (with any 5xx): the server asked us to come back.
RETRYABLE_STATUSES = frozenset({408, 429})
# Shown URLs are cut to this length so a hostile URL cannot flood the Job row.
MAX_SHOWN_URL = 300


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


# --- URLs and names -----------------------------------------------------------------------


def show_url(url: httpx.URL | str) -> str:
    """``url`` as messages and logs show it: cut, so a hostile URL cannot flood them."""
    text = str(url)
    return text if len(text) <= MAX_SHOWN_URL else text[: MAX_SHOWN_URL - 3] + "..."


def parse_url(text: str, *, base: httpx.URL | None = None) -> httpx.URL:
    """The URL to fetch, or ``FetchError("bad_url")``; ``base`` resolves a redirect."""
    try:
        url = base.join(text) if base is not None else httpx.URL(text)
    except (httpx.InvalidURL, TypeError, ValueError):
        raise FetchError(f"{show_url(text)!r} is not a valid URL", code="bad_url") from None
    if url.scheme not in ("http", "https"):
        raise FetchError(
            f"Only http and https URLs can be fetched, not {show_url(text)!r}", code="bad_url"
        )
    if not url.host:
        raise FetchError(f"{show_url(text)!r} has no host name", code="bad_url")
    if url.port is not None and not 0 < url.port < 65536:
        raise FetchError(f"{show_url(text)!r} has an invalid port", code="bad_url")
    # Refused rather than sent: credentials would end up on the Job row, in logs and in the
    # memory's source name, and would follow redirects to other hosts.
    if url.userinfo:
        raise FetchError(
            f"URLs with a user name or password are not accepted "
            f"({show_url(url.copy_with(userinfo=b''))})",
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


# --- resolving and connecting -------------------------------------------------------------


def _resolve(url: httpx.URL, port: int, budget: Budget, shown: str) -> list[IPAddress]:
    """The addresses of ``url``'s host, once per hop; a literal is its own answer.

    ``getaddrinfo`` has no timeout of its own, so it runs in a daemon thread that is
    abandoned when the budget runs out.
    """
    literal = parse_ip_literal(url.host)
    if literal is not None:
        return [literal]
    host = ascii_host(url)
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


def checked_addresses(
    url: httpx.URL, port: int, budget: Budget, allowed: AllowedHosts, shown: str
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
def open_pinned(
    url: httpx.URL,
    *,
    shown: str,
    budget: Budget,
    allowed: AllowedHosts,
    headers: dict[str, str],
    method: str = "GET",
    content: bytes | None = None,
    addresses: list[IPAddress] | None = None,
    as_sent: bool = False,
) -> Iterator[httpx.Response]:
    """One hop: resolve and check, then send from a checked address, trying each in turn.

    ``addresses`` are ones ``checked_addresses`` already returned for this host (the
    render proxy resolves each host once per page); without them the hop resolves here.
    ``as_sent`` (the proxy): exactly ``headers`` go out and the answer comes back as the
    server gave it; httpx's client would add its default headers and parse a redirect's
    Location, failing on one it cannot read, which a proxy must pass on untouched.
    """
    port = url.port or (443 if url.scheme == "https" else 80)
    if addresses is None:
        addresses = checked_addresses(url, port, budget, allowed, shown)
    literal = parse_ip_literal(url.host)
    server_name = str(literal) if literal is not None else ascii_host(url)
    last_error: httpx.TransportError | None = None
    for address in addresses:
        if budget.expired:
            raise budget.error(shown)
        watchdog = Watchdog(budget)
        # Pinning: the request goes to the checked IP itself (no second lookup to rebind),
        # while the Host header and the sni_hostname extension (TLS SNI and certificate
        # check) keep the real host name; public httpx API, no custom transport needed.
        request_url = url.copy_with(host=str(address))
        # A client per address and hop: no pooled connection outlives the check it was
        # made under; trust_env=False so no proxy from the environment does its own DNS.
        transport = httpx.HTTPTransport(verify=_ssl_context(), trust_env=False)
        with httpx.Client(
            transport=transport, trust_env=False, timeout=max(budget.remaining(), 0.001)
        ) as client:
            sent = {**headers, "Host": url.netloc.decode("ascii")}
            extensions = {"sni_hostname": server_name, "trace": watchdog.trace}
            if as_sent:
                extensions["timeout"] = client.timeout.as_dict()
                request = httpx.Request(
                    method, request_url, content=content, headers=sent, extensions=extensions
                )
            else:
                request = client.build_request(
                    method, request_url, content=content, headers=sent, extensions=extensions
                )
            try:
                if as_sent:
                    response = transport.handle_request(request)
                    response.request = request
                else:
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


def transport_error(exc: httpx.HTTPError, budget: Budget, shown: str) -> FetchError:
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
    budget = Budget(timeout)
    allowed = AllowedHosts.parse(allow_hosts)
    original = parse_url(url)
    current = original
    headers = {
        "User-Agent": USER_AGENT,
        "Accept": accept or "*/*",
        # Compressed bodies could expand past max_bytes inside a single read.
        "Accept-Encoding": "identity",
    }
    for hop in range(max_redirects + 1):
        shown = (
            show_url(current)
            if hop == 0
            else f"{show_url(current)} (redirected from {show_url(original)})"
        )
        try:
            with open_pinned(
                current, shown=shown, budget=budget, allowed=allowed, headers=headers
            ) as response:
                status = response.status_code
                location = response.headers.get("location")
                if status in REDIRECT_STATUSES and location:
                    if hop == max_redirects:
                        raise FetchError(
                            f"{show_url(original)} redirected more than {max_redirects} times",
                            code="too_many_redirects",
                        )
                    current = parse_url(location, base=current)
                    continue
                if not 200 <= status < 300:
                    reason = f"{status} {response.reason_phrase}".strip()
                    raise FetchError(
                        f"{shown} answered HTTP {reason}",
                        code="http_error",
                        retryable=status in RETRYABLE_STATUSES or status >= 500,
                    )
                with open_sink(dest) as sink:
                    size = read_body(
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
            raise transport_error(exc, budget, shown) from None
    raise AssertionError("unreachable: the last hop returns or raises")  # pragma: no cover


# --- webhook deliveries -------------------------------------------------------------------


def check_url(url: str, *, allow_hosts: Collection[str] = ()) -> None:
    """What can be said of a URL without a DNS lookup: its form, and its host if that is an
    IP literal (in any spelling) or a loopback name. ``FetchError`` says why not.

    For a callback URL at create: resolving an attacker's name inside an API request would
    let them hold a request thread on a slow resolver. Names are resolved and their
    addresses checked at delivery, every time (the answer may have changed by then).
    """
    parsed = parse_url(url)
    allowed = AllowedHosts.parse(allow_hosts)
    if allowed.host(parsed):
        return
    literal = parse_ip_literal(parsed.host)
    if literal is not None:
        if literal in allowed.addresses:
            return
        try:
            check_address(literal)
        except FetchError as exc:
            raise FetchError(
                f"Refusing {show_url(url)}: {exc.message}", code="url_refused"
            ) from None
    elif ascii_host(parsed).rstrip(".").lower().endswith(("localhost", ".local", ".internal")):
        raise FetchError(f"Refusing {show_url(url)}: a local host name", code="url_refused")


@dataclass(frozen=True)
class PostResult:
    status: int
    excerpt: str
    elapsed: float


def post(
    url: str,
    *,
    content: bytes,
    headers: dict[str, str],
    timeout: float,
    allow_hosts: Collection[str] = (),
    excerpt_bytes: int = 1024,
) -> PostResult:
    """POST ``content`` once, within ``timeout`` seconds, to an address that passed the
    policy; the answer's status and the first ``excerpt_bytes`` of its body.

    A redirect is an answer like any other (its status is returned, its Location never
    followed): a webhook receiver that moved says so by failing, not by sending the signed
    body somewhere else.
    """
    budget = Budget(timeout)
    target = parse_url(url)
    shown = show_url(target)
    sent = {"User-Agent": USER_AGENT, "Content-Type": "application/json", **headers}
    try:
        with open_pinned(
            target,
            shown=shown,
            budget=budget,
            allowed=AllowedHosts.parse(allow_hosts),
            headers=sent,
            method="POST",
            content=content,
        ) as response:
            head = bytearray()
            for chunk in response.iter_raw():
                head += chunk
                if len(head) >= excerpt_bytes:
                    break
            excerpt = bytes(head[:excerpt_bytes]).decode("utf-8", "replace")
            return PostResult(response.status_code, excerpt, time.monotonic() - budget.started)
    except httpx.HTTPError as exc:
        raise transport_error(exc, budget, shown) from None
