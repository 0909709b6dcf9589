"""A local forward proxy that holds a browser to the address policy, for one page render.

A headless browser asks for the page, its scripts, frames, XHR, redirect targets and
WebSockets on its own, and would resolve each name itself: checked or not, its second
lookup is DNS rebinding. So the browser is given this proxy and nothing else (it resolves
nothing: ``processing.web.render``), and every request it makes arrives here:

- absolute-form HTTP (``GET http://host/path``) is forwarded with the guarded client
  (``client.open_pinned``): the host resolved once, every address checked, the connection
  pinned to a checked address;
- ``CONNECT host:port`` (https, wss) gets a plain TCP tunnel to a checked address; TLS stays
  end to end between the browser and the site.

Each host is resolved once per proxy (per render) and the checked answer reused, so the
page sees one answer per name however often it asks. A refusal is a 403 with the reason,
and every decision is logged (``ProxyEvent``). Bounds: one deadline for the proxy's life,
a byte budget over everything servers send, a number of requests, of concurrent browser
connections, and an idle timeout per connection; past them requests are refused or cut.
It runs in the caller's process on threads, on 127.0.0.1 and an ephemeral port.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import socketserver
import threading
import time
from collections.abc import Collection
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from types import TracebackType
from typing import Any

import httpx

from jobs.outbound.addresses import AllowedHosts, IPAddress, ascii_host
from jobs.outbound.bounds import Budget
from jobs.outbound.client import (
    checked_addresses,
    open_pinned,
    parse_url,
    show_url,
    transport_error,
)
from jobs.outbound.errors import FetchError

# Hop-by-hop headers (RFC 9110 7.6.1) and the proxy's own: never forwarded either way.
_HOP_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "expect",
    }
)
_CHUNK = 64 * 1024
# Entries logged past ``max_requests`` (refusals of a page that keeps asking); the rest are
# only counted, so a script in a loop cannot grow the log without bound.
_LOG_SLACK = 200


@dataclass
class ProxyEvent:
    """One request or tunnel the browser asked for, and what the proxy did with it."""

    method: str
    target: str  # the absolute URL, or host:port for CONNECT
    allowed: bool
    reason: str = ""  # why it was refused or cut; "" when it went through
    status: int | None = None  # the status the browser got (a tunnel's is 200)
    bytes: int = 0  # response (or tunnel) bytes the server sent


class _Lookup:
    """One host's checked addresses (or the refusal), shared by all its requests."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.addresses: list[IPAddress] = []
        self.error: FetchError | None = None
        self.shown = ""  # the URL the error message names


class _Refused(Exception):
    """A request the proxy will not serve: answered with ``status`` and logged."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


class GuardedProxy:
    """The proxy for one render: ``with GuardedProxy(...) as proxy:`` then ``proxy.url``.

    ``timeout`` is the proxy's whole life (the render's deadline); ``max_bytes`` covers
    every byte servers send, all requests and tunnels together.
    """

    def __init__(
        self,
        *,
        timeout: float,
        max_bytes: int,
        allow_hosts: Collection[str] = (),
        max_requests: int = 500,
        max_connections: int = 64,
        idle_timeout: float = 30.0,
        max_request_body: int = 10 * 1024 * 1024,
    ) -> None:
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.max_requests = max_requests
        self.max_connections = max_connections
        self.idle_timeout = idle_timeout
        self.max_request_body = max_request_body
        self.allowed = AllowedHosts.parse(allow_hosts)
        self.deadline = time.monotonic() + timeout
        self.bytes_received = 0
        self.requests = 0
        self.unlogged = 0  # requests past the log's length, counted only
        self.over_budget = False
        self._expired = False
        self._log: list[ProxyEvent] = []
        self._lock = threading.Lock()
        self._lookups: dict[str, _Lookup] = {}
        self._budgets: set[Budget] = set()
        self._sockets: set[socket.socket] = set()
        self._connections = 0
        self._closed = False
        self._server = _Server(self)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="render-proxy",
            daemon=True,
        )
        self._timer = threading.Timer(timeout, self._expire)
        self._timer.daemon = True

    # --- the caller's side ----------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """What the browser is given: an IP literal, so reaching it needs no lookup."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def log(self) -> list[ProxyEvent]:
        with self._lock:
            return list(self._log)

    @property
    def refused(self) -> list[ProxyEvent]:
        return [event for event in self.log if not event.allowed]

    def remaining(self) -> float:
        return self.deadline - time.monotonic()

    @property
    def expired(self) -> bool:
        """Past the deadline (whether or not the timer that cuts everything ran yet)."""
        return self._expired or self.remaining() <= 0

    def __enter__(self) -> GuardedProxy:
        self._thread.start()
        self._timer.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop accepting, cut every connection and upstream request, and wait (briefly)
        for the connection threads: nothing the page started outlives the render."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._timer.cancel()
        self._server.shutdown()
        self._cut_everything()
        self._server.server_close()
        self._server.join(timeout=2.0)

    def check(self, url: httpx.URL, *, shown: str) -> list[IPAddress]:
        """The checked addresses of ``url``'s host, resolved once for the proxy's life.

        The render calls this for the page's own URL before starting the browser, so a
        refused page fails with the same "Refusing to fetch ..." message ``fetch`` gives,
        and the browser's request then reuses the very answer that was checked.
        """
        port = url.port or (443 if url.scheme == "https" else 80)
        key = ascii_host(url).rstrip(".").lower()
        with self._lock:
            lookup = self._lookups.get(key)
            owner = lookup is None
            if lookup is None:
                lookup = self._lookups[key] = _Lookup()
        if owner:
            lookup.shown = shown
            try:
                budget = self._budget()
                try:
                    lookup.addresses = checked_addresses(url, port, budget, self.allowed, shown)
                finally:
                    self._release(budget)
            except FetchError as exc:
                lookup.error = exc
            finally:
                lookup.done.set()
        elif not lookup.done.wait(max(0.0, self.remaining())):
            raise FetchError(f"Resolving {shown} took too long", code="timeout", retryable=True)
        if lookup.error is not None:
            if owner:
                raise lookup.error
            # The cached message names the URL that asked first: name this one instead.
            raise FetchError(
                lookup.error.message.replace(lookup.shown, shown, 1),
                code=lookup.error.code,
                retryable=lookup.error.retryable,
            )
        return lookup.addresses

    # --- bookkeeping ----------------------------------------------------------------------

    def _budget(self) -> Budget:
        budget = Budget(max(0.0, self.remaining()))
        with self._lock:
            self._budgets.add(budget)
            closed = self._closed or self.expired
        if closed:
            budget.cut()
        return budget

    def _release(self, budget: Budget) -> None:
        with self._lock:
            self._budgets.discard(budget)

    def _record(self, event: ProxyEvent) -> ProxyEvent:
        with self._lock:
            if len(self._log) < self.max_requests + _LOG_SLACK:
                self._log.append(event)
            else:
                self.unlogged += 1
        return event

    def _admit(self, event: ProxyEvent) -> None:
        """Count the request; refuse it when a bound is already spent."""
        with self._lock:
            self.requests += 1
            over = self.requests > self.max_requests
        if self._closed or self.expired:
            raise _Refused(503, "the render's time is up")
        if self.over_budget:
            raise _Refused(503, f"over the byte budget of {self.max_bytes} bytes")
        if over:
            raise _Refused(503, f"over the limit of {self.max_requests} requests")

    def _take(self, count: int, event: ProxyEvent) -> bool:
        """Add ``count`` received bytes; False once the budget is spent (cut the transfer)."""
        with self._lock:
            self.bytes_received += count
            event.bytes += count
            if self.bytes_received > self.max_bytes:
                self.over_budget = True
        return not self.over_budget

    def _track(self, sock: socket.socket) -> bool:
        with self._lock:
            if self._closed or self.expired:
                return False
            self._sockets.add(sock)
            return True

    def _untrack(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.discard(sock)

    def _enter_connection(self) -> bool:
        with self._lock:
            if self._connections >= self.max_connections:
                return False
            self._connections += 1
            return True

    def _leave_connection(self) -> None:
        with self._lock:
            self._connections -= 1

    def _cut_reason(self) -> str:
        """Why a transfer in flight ends now, or "" while it may go on."""
        if self._closed:
            return "cut: the render ended"
        return "cut at the deadline" if self.expired else ""

    def _expire(self) -> None:
        with self._lock:
            self._expired = True
        self._cut_everything()

    def _cut_everything(self) -> None:
        with self._lock:
            budgets, sockets = list(self._budgets), list(self._sockets)
        for budget in budgets:
            budget.cut()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)


class _Server(socketserver.ThreadingTCPServer):
    """Threads per browser connection, at most ``max_connections`` of them.

    A ``TCPServer`` rather than ``http.server.HTTPServer``: the latter looks its own
    address up (``getfqdn``) when it binds, and this proxy makes no lookup of its own.
    """

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = False

    def __init__(self, proxy: GuardedProxy) -> None:
        self.proxy = proxy
        self._threads_alive: set[threading.Thread] = set()
        super().__init__(("127.0.0.1", 0), _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self.proxy._enter_connection():
            self._turn_away(request, b"Too many connections")
            return
        if not self.proxy._track(request):  # closed, or past the deadline
            self.proxy._leave_connection()
            self._turn_away(request, b"The render's time is up")
            return
        thread = threading.Thread(
            target=self._serve, args=(request, client_address), name="render-proxy-conn"
        )
        thread.daemon = True
        with self.proxy._lock:
            self._threads_alive.add(thread)
        thread.start()

    def _turn_away(self, request: Any, reason: bytes) -> None:
        """A 503 for a connection that gets no thread (not logged: no request was read)."""
        with contextlib.suppress(OSError):
            request.sendall(
                b"HTTP/1.1 503 " + reason + b"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
        self.shutdown_request(request)

    def _serve(self, request: Any, client_address: Any) -> None:
        try:
            self.finish_request(request, client_address)
        except Exception:  # noqa: S110 - a browser connection that broke; the log has the rest
            pass
        finally:
            self.proxy._untrack(request)
            self.proxy._leave_connection()
            self.shutdown_request(request)
            with self.proxy._lock:
                self._threads_alive.discard(threading.current_thread())

    def join(self, timeout: float) -> None:
        end = time.monotonic() + timeout
        with self.proxy._lock:
            threads = list(self._threads_alive)
        for thread in threads:
            thread.join(max(0.0, end - time.monotonic()))

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet: a browser that hangs up mid-response is normal, not an error to print."""


class _Handler(BaseHTTPRequestHandler):
    """One browser connection: keep-alive requests in absolute form, or one CONNECT."""

    protocol_version = "HTTP/1.1"
    server: _Server

    def setup(self) -> None:
        self.timeout = self.server.proxy.idle_timeout  # StreamRequestHandler applies it
        super().setup()

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the proxy's own log (``GuardedProxy.log``) says what happened."""

    @property
    def proxy(self) -> GuardedProxy:
        return self.server.proxy

    def _refuse(
        self, event: ProxyEvent, status: int, reason: str, *, allowed: bool = False
    ) -> None:
        """Answer with ``status`` and close. ``allowed`` for a request the policy let
        through that failed upstream (a 502), so ``refused`` lists refusals only."""
        event.allowed, event.reason, event.status = allowed, reason, status
        body = f"Refused by the render proxy: {reason}\n".encode()
        with contextlib.suppress(OSError):
            self.send_response_only(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
        self.close_connection = True

    # --- CONNECT: a tunnel to a checked address -------------------------------------------

    def do_CONNECT(self) -> None:
        proxy = self.proxy
        event = proxy._record(ProxyEvent("CONNECT", show_url(self.path), allowed=True))
        try:
            proxy._admit(event)
            url, port = self._tunnel_target()
            try:
                addresses = proxy.check(url, shown=show_url(self.path))
            except FetchError as exc:
                raise _Refused(403 if exc.code == "url_refused" else 502, exc.message) from None
            upstream = self._connect(addresses, port)
        except _Refused as refusal:
            self._refuse(event, refusal.status, refusal.reason)
            return
        try:
            event.status = 200
            self.send_response_only(200, "Connection Established")
            self.end_headers()
            early = self._buffered()
            if early:
                upstream.sendall(early)
            self._relay(upstream, event)
        finally:
            proxy._untrack(upstream)
            upstream.close()
            self.close_connection = True

    def _tunnel_target(self) -> tuple[httpx.URL, int]:
        """``host:port`` of a CONNECT, the host read as a URL's would be (IP literals in
        every spelling, IDNA); the port taken as given (a URL drops 443 and 80)."""
        host, _, port = self.path.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise _Refused(400, f"CONNECT needs host:port, not {show_url(self.path)!r}")
        try:
            url = parse_url(f"https://{host}/")
        except FetchError as exc:
            raise _Refused(400, exc.message) from None
        if url.path != "/" or url.query or url.port is not None:
            raise _Refused(400, f"CONNECT needs host:port, not {show_url(self.path)!r}")
        return url, int(port)

    def _buffered(self) -> bytes:
        """What the browser sent right behind its CONNECT and the line reader already
        took into its buffer (normally nothing: browsers wait for the 200)."""
        self.connection.setblocking(False)
        try:
            return self.rfile.read1(_CHUNK) or b""
        except (BlockingIOError, InterruptedError):
            return b""
        finally:
            self.connection.settimeout(self.proxy.idle_timeout)

    def _connect(self, addresses: list[IPAddress], port: int) -> socket.socket:
        """A TCP connection to the first checked address that answers: connect() takes the
        address itself, so there is no lookup between the check and the connection."""
        last: OSError | None = None
        for address in addresses:
            remaining = self.proxy.remaining()
            if remaining <= 0:
                break
            family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
            sock = socket.socket(family, socket.SOCK_STREAM)
            sock.settimeout(min(self.proxy.idle_timeout, remaining))
            if not self.proxy._track(sock):
                sock.close()
                break
            try:
                sock.connect((str(address), port))
            except OSError as exc:
                self.proxy._untrack(sock)
                sock.close()
                last = exc
                continue
            return sock
        detail = f": {last}" if last is not None else ""
        raise _Refused(502, f"could not connect to {show_url(self.path)}{detail}")

    def _relay(self, upstream: socket.socket, event: ProxyEvent) -> None:
        """Copy bytes both ways until either side closes, the connection idles, the
        deadline passes or the byte budget is spent."""
        proxy = self.proxy
        browser = self.connection
        with selectors.DefaultSelector() as selector:
            selector.register(browser, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, browser)
            idle_since = time.monotonic()
            while True:
                now = time.monotonic()
                wait = min(proxy.idle_timeout - (now - idle_since), proxy.remaining())
                if wait <= 0:
                    event.reason = proxy._cut_reason() or "idle too long"
                    return
                ready = selector.select(timeout=min(wait, 0.5))
                if proxy._cut_reason():
                    event.reason = proxy._cut_reason()
                    return
                for key, _mask in ready:
                    source: socket.socket = key.fileobj  # type: ignore[assignment]
                    sink: socket.socket = key.data
                    try:
                        data = source.recv(_CHUNK)
                    except OSError:
                        data = b""
                    if not data:
                        event.reason = proxy._cut_reason()
                        return
                    if source is upstream and not proxy._take(len(data), event):
                        event.reason = f"cut: over the byte budget of {proxy.max_bytes} bytes"
                        return
                    try:
                        sink.sendall(data)
                    except OSError:
                        return
                    idle_since = time.monotonic()

    # --- absolute-form requests: forwarded with the guarded client ------------------------

    def _forward(self) -> None:
        proxy = self.proxy
        event = proxy._record(ProxyEvent(self.command, show_url(self.path), allowed=True))
        try:
            proxy._admit(event)
            url, body = self._request_target(), self._request_body()
            shown = show_url(url)
            try:
                addresses = proxy.check(url, shown=shown)
            except FetchError as exc:
                raise _Refused(403 if exc.code == "url_refused" else 502, exc.message) from None
        except _Refused as refusal:
            self._refuse(event, refusal.status, refusal.reason)
            return
        headers: dict[str, str] = {}
        connection_tokens = {
            token.strip().lower()
            for value in self.headers.get_all("Connection", [])
            for token in value.split(",")
        }
        for name, value in self.headers.items():
            lowered = name.lower()
            if lowered in _HOP_HEADERS or lowered in connection_tokens or lowered == "host":
                continue
            headers[name] = f"{headers[name]}, {value}" if name in headers else value
        budget = proxy._budget()
        started = False
        try:
            with open_pinned(
                url,
                shown=shown,
                budget=budget,
                allowed=proxy.allowed,
                headers=headers,
                method=self.command,
                content=body,
                addresses=addresses,
                as_sent=True,
            ) as response:
                started = True
                self._respond(response, event, budget)
        except httpx.HTTPError as exc:
            error = transport_error(exc, budget, shown)
            if started:
                event.reason = error.message
                self.close_connection = True
            else:
                status = 504 if error.code == "timeout" else 502
                self._refuse(event, status, error.message, allowed=True)
        except FetchError as exc:
            if started:
                event.reason = exc.message
                self.close_connection = True
            else:
                status = 504 if exc.code == "timeout" else 502
                self._refuse(event, status, exc.message, allowed=True)
        except OSError as exc:  # the browser hung up
            event.reason = proxy._cut_reason() or f"browser closed the connection ({exc})"
            self.close_connection = True
        finally:
            proxy._release(budget)

    do_GET = do_POST = do_HEAD = do_PUT = do_DELETE = do_OPTIONS = do_PATCH = _forward

    def _request_target(self) -> httpx.URL:
        if not self.path.lower().startswith(("http://", "https://")):
            raise _Refused(400, "only absolute-form requests (a proxy's) and CONNECT")
        try:
            return parse_url(self.path)
        except FetchError as exc:
            raise _Refused(400, exc.message) from None

    def _request_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            raise _Refused(411, "chunked request bodies are not supported")
        length_text = self.headers.get("Content-Length", "").strip()
        if not length_text:
            return None
        if not length_text.isdigit():
            raise _Refused(400, "invalid Content-Length")
        length = int(length_text)
        if length > self.proxy.max_request_body:
            raise _Refused(413, f"request body over {self.proxy.max_request_body} bytes")
        return self.rfile.read(length)

    def _respond(self, response: httpx.Response, event: ProxyEvent, budget: Budget) -> None:
        """The server's answer to the browser as it arrives: status, end-to-end headers,
        and the raw body (still content-encoded: the browser decodes it)."""
        proxy = self.proxy
        event.status = response.status_code
        no_body = (
            self.command == "HEAD"
            or response.status_code in (204, 304)
            or 100 <= response.status_code < 200
        )
        length = response.headers.get("content-length")
        chunked_in = "chunked" in response.headers.get("transfer-encoding", "").lower()
        sized = length is not None and length.isdigit() and not chunked_in
        chunked_out = not no_body and not sized and self.request_version == "HTTP/1.1"
        self.send_response_only(response.status_code, response.reason_phrase or None)
        for raw_name, raw_value in response.headers.raw:
            name = raw_name.decode("latin-1")
            lowered = name.lower()
            if lowered in _HOP_HEADERS or (lowered == "content-length" and not sized):
                continue
            self.send_header(name, raw_value.decode("latin-1"))
        if chunked_out:
            self.send_header("Transfer-Encoding", "chunked")
        elif not no_body and not sized:
            self.close_connection = True  # the body ends when the connection does
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if no_body:
            return
        for data in response.iter_raw():  # as it comes: a chunk size would wait to fill it
            if not data:
                continue
            if not proxy._take(len(data), event):
                event.reason = f"cut: over the byte budget of {proxy.max_bytes} bytes"
                self.close_connection = True
                return
            if chunked_out:
                self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            else:
                self.wfile.write(data)
        if budget.expired:
            # A cut socket reads as the clean end of a body the closing connection ends:
            # the browser must see a broken response, not a complete short one.
            event.reason = proxy._cut_reason() or "cut at the deadline"
            self.close_connection = True
            return
        if chunked_out:
            self.wfile.write(b"0\r\n\r\n")
