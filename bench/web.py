"""Web pages: main-content extraction on the corpus's real pages, beside trafilatura alone.

    python -m bench.web              # seconds: the best of 3 runs per page and method
    python -m bench.web --repeat 1
    python -m bench.web --no-render  # without the render_js section (needs Chromium)

Each page of the corpus's ``web/`` folder is served from a loopback HTTP server, fetched
through the guarded client (``jobs.outbound.fetch``) and decoded as the web job does
(``decode_html``); then ours (``processing.web.extract``), trafilatura's defaults and
trafilatura with ``favor_precision`` extract it, in the same run. Ours also extracts the
metadata (trafilatura's defaults do not), and runs trafilatura twice.

Then, per page, the job's whole path without and with ``render_js``: the guarded fetch
and the extraction, beside Chromium's render through the guarded proxy and the same
extraction (``processing.web.render``), and what the rendered page scores.

Scoring (``expected.json``: per page, text to keep and boilerplate to drop): whitespace is
squashed in both; a ``with`` string is kept if it occurs in the extracted text, a
``without`` string dropped if it does not. Overall figures add up all pages (target:
97% kept and 97% dropped). Seconds are per page, extraction only (not the fetch).
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import statistics
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

from bench import report
from tests.corpus import require_corpus

FOLDER = "web"
EXPECTED = "expected.json"
TARGET = 0.97
FETCH_TIMEOUT = 10.0


class Score(NamedTuple):
    """One page's result, or all pages' added up (``total``)."""

    kept: int
    with_total: int
    dropped: int
    without_total: int

    @classmethod
    def total(cls, scores: list[Score]) -> Score:
        """The scores of several pages added up."""
        return cls(*(sum(score[field] for score in scores) for field in range(len(cls._fields))))

    def met(self, target: float = TARGET) -> bool:
        """Whether both the kept and the dropped share reach ``target``."""
        return self.kept >= target * self.with_total and self.dropped >= target * self.without_total


def normalise(text: str) -> str:
    """Whitespace squashed to single spaces; nothing else changes (case included)."""
    return " ".join(text.split())


def score(text: str, expected: dict[str, Any]) -> Score:
    """How one extraction does against one page's ``with`` and ``without`` strings."""
    text = normalise(text)
    keep, drop = expected["with"], expected["without"]
    return Score(
        kept=sum(normalise(item) in text for item in keep),
        with_total=len(keep),
        dropped=sum(normalise(item) not in text for item in drop),
        without_total=len(drop),
    )


def missed(text: str, expected: dict[str, Any]) -> list[str]:
    """What an extraction got wrong on one page: lost text and kept boilerplate."""
    text = normalise(text)
    lost = [f"lost {item!r}" for item in expected["with"] if normalise(item) not in text]
    kept = [f"kept {item!r}" for item in expected["without"] if normalise(item) in text]
    return lost + kept


def load_expected(folder: Path) -> dict[str, dict[str, Any]]:
    """``expected.json``: page file name -> ``url``, ``with``, ``without``."""
    return json.loads((folder / EXPECTED).read_text(encoding="utf-8"))


# --- serving and fetching ---------------------------------------------------------------


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args: Any) -> None:
        pass  # one line per request would bury the table


@contextmanager
def serve(folder: Path) -> Iterator[str]:
    """Serve ``folder`` on 127.0.0.1 (an ephemeral port) from a thread; yields the base
    URL."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="bench-web", daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def fetch_page(base_url: str, name: str) -> str:
    """One page through the guarded client, decoded as the web job decodes it."""
    from jobs.outbound import fetch
    from processing.documents.html import MAX_HTML_BYTES, decode_html

    result = fetch(
        f"{base_url}/{name}",
        max_bytes=MAX_HTML_BYTES,
        timeout=FETCH_TIMEOUT,
        allow_hosts=["127.0.0.1"],
    )
    assert result.content is not None
    return decode_html(result.content)


# --- the methods --------------------------------------------------------------------------


def _ours(html: str, url: str) -> str:
    from processing.documents.base import DocumentError
    from processing.web.extract import extract_page

    try:
        return extract_page(html, url=url).text()
    except DocumentError:
        return ""


def _trafilatura(html: str, url: str, **options: Any) -> str:
    import trafilatura

    return trafilatura.extract(html, url=url, **options) or ""


METHODS: dict[str, Callable[[str, str], str]] = {
    "ours": _ours,
    "trafilatura defaults": _trafilatura,
    "trafilatura favor_precision": functools.partial(_trafilatura, favor_precision=True),
}
# Column names in the per-page table.
SHORT = {
    "ours": "ours",
    "trafilatura defaults": "defaults",
    "trafilatura favor_precision": "precision",
}


def measure(
    pages: dict[str, str], expected: dict[str, dict[str, Any]], repeat: int = 3
) -> dict[str, Any]:
    """Every method on every page: scores, seconds (the best of ``repeat`` runs: the
    machine is shared) and what each missed."""
    results: dict[str, Any] = {}
    for method, extract in METHODS.items():
        for name, html in pages.items():
            extract(html, expected[name]["url"])  # warm up: lazy imports, caches
        per_page = {}
        for name, html in pages.items():
            url = expected[name]["url"]
            seconds = float("inf")
            for _ in range(max(repeat, 1)):
                started = time.perf_counter()
                text = extract(html, url)
                seconds = min(seconds, time.perf_counter() - started)
            per_page[name] = {
                "score": score(text, expected[name]),
                "seconds": seconds,
                "missed": missed(text, expected[name]),
            }
        results[method] = per_page
    return results


# --- output -------------------------------------------------------------------------------


def _percent(part: int, whole: int) -> str:
    return f"{part / whole:.1%}" if whole else "-"


def _page_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for name in results["ours"]:
        row: dict[str, Any] = {"page": name}
        for method, per_page in results.items():
            page = per_page[name]
            result = page["score"]
            row[f"{SHORT[method]} kept"] = f"{result.kept}/{result.with_total}"
            row[f"{SHORT[method]} dropped"] = f"{result.dropped}/{result.without_total}"
            row[f"{SHORT[method]} s"] = f"{page['seconds']:.3f}"
        rows.append(row)
    return rows


def _overall_rows(results: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for method, per_page in results.items():
        total = Score.total([page["score"] for page in per_page.values()])
        rows.append(
            {
                "method": method,
                "kept": f"{total.kept}/{total.with_total} = "
                + _percent(total.kept, total.with_total),
                "dropped": f"{total.dropped}/{total.without_total} = "
                + _percent(total.dropped, total.without_total),
                "s/page (mean)": f"{statistics.mean(p['seconds'] for p in per_page.values()):.3f}",
                "target met": "yes" if total.met(TARGET) else "no",
            }
        )
    return rows


def _print_table(rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(row.get(c, ""))) for row in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


@contextmanager
def loopback_only() -> Iterator[None]:
    """This process (where the render's proxy runs) resolves no name and connects nowhere
    but loopback: the corpus pages name their sites' scripts and images, which the proxy
    would otherwise fetch from the Internet. They fail as unresolvable instead."""
    import ipaddress
    import socket

    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            ipaddress.ip_address(str(host))
        except ValueError:
            raise socket.gaierror(socket.EAI_NONAME, "bench: no lookups") from None
        return real_getaddrinfo(host, *args, **kwargs)

    def connect(sock: socket.socket, address: Any) -> Any:
        inet = sock.family in (socket.AF_INET, socket.AF_INET6)
        if inet and not ipaddress.ip_address(str(address[0]).split("%")[0]).is_loopback:
            raise OSError(f"bench: no connections off loopback ({address!r})")
        return real_connect(sock, address)

    socket.getaddrinfo, socket.socket.connect = getaddrinfo, connect
    try:
        yield
    finally:
        socket.getaddrinfo, socket.socket.connect = real_getaddrinfo, real_connect


def render_timing(base_url: str, expected: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Seconds per page for the job's path: fetch + extract, and render + extract."""
    from processing.web.render import render

    rows = []
    for name, entry in expected.items():
        url = f"{base_url}/{name}"
        started = time.perf_counter()
        plain = _ours(fetch_page(base_url, name), entry["url"])
        plain_s = time.perf_counter() - started
        started = time.perf_counter()
        shown = render(
            url, timeout=45, max_bytes=50 * 1024 * 1024, memory_mb=1024, allow_hosts=["127.0.0.1"]
        )
        rendered = _ours(shown.html, entry["url"])
        render_s = time.perf_counter() - started
        plain_score, rendered_score = score(plain, entry), score(rendered, entry)
        rows.append(
            {
                "page": name,
                "fetch+extract s": f"{plain_s:.2f}",
                "render_js s": f"{render_s:.2f}",
                "requests": len(shown.requests),
                "refused": len(shown.refused),
                "rendered kept": f"{rendered_score.kept}/{rendered_score.with_total}",
                "rendered dropped": f"{rendered_score.dropped}/{rendered_score.without_total}",
                "plain kept": f"{plain_score.kept}/{plain_score.with_total}",
            }
        )
    mean = {
        key: f"{statistics.mean(float(row[key]) for row in rows):.2f}"
        for key in ("fetch+extract s", "render_js s")
    }
    rows.append({"page": "mean", **mean})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="runs per page, best counts")
    parser.add_argument("--no-render", action="store_true", help="skip the render_js timing")
    args = parser.parse_args()
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    import django

    django.setup()
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per fetch otherwise
    folder = require_corpus() / FOLDER
    expected = load_expected(folder)
    with serve(folder) as base_url:
        pages = {name: fetch_page(base_url, name) for name in expected}
        if args.no_render:
            timing = None
        else:
            with loopback_only():
                timing = render_timing(base_url, expected)
    results = measure(pages, expected, args.repeat)
    page_rows, overall_rows = _page_rows(results), _overall_rows(results)
    print(f"{len(pages)} pages from {folder}, fetched over loopback through jobs.outbound.fetch\n")
    _print_table(page_rows)
    print()
    _print_table(overall_rows)
    misses = {name: page["missed"] for name, page in results["ours"].items() if page["missed"]}
    if misses:
        print("\nours missed:")
        for name, items in misses.items():
            print(f"  {name}: {'; '.join(items)}")
    report.append(
        "Web pages: main-content extraction",
        "python -m bench.web",
        f"{len(pages)} real pages (corpus `web/`), target >= {TARGET:.0%} kept and dropped\n\n"
        + report.table(overall_rows)
        + "\n\n"
        + report.table(page_rows),
    )
    if timing:
        print("\nthe job's path per page, without and with render_js (the page's other requests")
        print("go to the origin's loopback server or are refused by the guarded proxy)\n")
        _print_table(timing)
        report.append(
            "Web pages: seconds per page without and with render_js",
            "python -m bench.web",
            "Served on loopback; fetch+extract is the job's path without render_js, "
            "render_js is Chromium through the guarded proxy plus the same extraction.\n\n"
            + report.table(timing),
        )


if __name__ == "__main__":
    main()
