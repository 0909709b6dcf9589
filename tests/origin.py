"""A loopback web server for the proxy and render tests: routes are functions, every request
is recorded (method, path, Host and headers), and slow routes stop with the server."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import unquote


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    host: str
    headers: dict[str, str]
    body: bytes


Route = Callable[["OriginHandler"], None]


class OriginHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: Origin

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the tests assert on ``server.seen`` instead."""

    def reply(self, status: int, body: bytes | str = b"", **headers: str) -> None:
        data = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name.replace("_", "-"), value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def html(self, text: str) -> None:
        self.reply(200, text, Content_Type="text/html; charset=utf-8")

    @property
    def query(self) -> str:
        return unquote(self.path.split("?", 1)[1]) if "?" in self.path else ""

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        route = self.path.split("?", 1)[0]
        self.server.seen.append(
            Seen(self.command, self.path, self.headers.get("Host", ""), dict(self.headers), body)
        )
        handler = self.server.routes.get(route)
        try:
            if handler is None:
                self.reply(404, "not here")
            else:
                handler(self)
        except (BrokenPipeError, ConnectionResetError):
            pass

    do_GET = do_POST = do_HEAD = do_PUT = _handle


class Origin(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, routes: dict[str, Route]) -> None:
        super().__init__(("127.0.0.1", 0), OriginHandler)
        self.routes = routes
        self.seen: list[Seen] = []
        self.stop = threading.Event()

    def handle_error(self, request: Any, client_address: Any) -> None:
        """Quiet about clients that hang up (proxies and browsers do); loud otherwise."""
        if not isinstance(sys.exc_info()[1], ConnectionError | TimeoutError):
            super().handle_error(request, client_address)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def url(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    @property
    def paths(self) -> list[str]:
        return [seen.path for seen in self.seen]


@contextmanager
def serving(routes: dict[str, Route]) -> Iterator[Origin]:
    server = Origin(routes)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    try:
        yield server
    finally:
        server.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(5)


# --- routes several tests use --------------------------------------------------------------


def redirect_to_query(handler: OriginHandler) -> None:
    """``/to?URL``: a 302 to URL."""
    handler.reply(302, Location=handler.query)


def trickle(handler: OriginHandler) -> None:
    """A response that never ends: a byte every 50 ms until the server stops."""
    handler.send_response(200)
    handler.send_header("Content-Type", "text/html; charset=utf-8")
    handler.send_header("Connection", "close")
    handler.end_headers()
    handler.wfile.write(b"<html><body><p>The start of a page that never ends.</p>")
    handler.wfile.flush()
    while not handler.server.stop.wait(0.05):
        handler.wfile.write(b" ")
        handler.wfile.flush()
