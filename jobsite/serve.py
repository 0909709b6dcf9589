"""``python -m jobsite.serve``: the web process, the ASGI app under uvicorn, as ``make run``,
the tests, the benchmarks and the compose file all start it (one place for its options).

uvicorn runs with ``jobsite.protocol``'s HTTP protocol: connection caps, a deadline and a
size cap for request heads. Bodies are read by ``jobsite.intake`` (in the app).
"""

from __future__ import annotations

import argparse
import os

import uvicorn


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    parser.add_argument("--workers", type=int, default=int(os.environ.get("WEB_WORKERS", "1")))
    parser.add_argument("--access-log", action="store_true", help="log every request")
    parser.add_argument("--backlog", type=int, default=2048, help="pending connections")
    parser.add_argument(
        "--app",
        default="jobsite.asgi:application",
        help="the ASGI app (the API benchmark serves its baseline app the same way)",
    )
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    # The protocol reads its limits from Django's settings at the first connection, once
    # the app (which sets Django up) has loaded.
    from jobsite.protocol import GuardedHttpToolsProtocol, raise_open_files_limit

    raise_open_files_limit()  # before the connection cap is derived from it
    uvicorn.run(
        args.app,
        host=args.host,
        port=args.port,
        workers=args.workers,
        http=GuardedHttpToolsProtocol,
        access_log=args.access_log,
        backlog=args.backlog,
        # uvicorn reads FORWARDED_ALLOW_IPS itself, with the default settings.py gives it.
        proxy_headers=True,
        # Idle kept-alive connections are closed after this; heads have their own deadline.
        timeout_keep_alive=5,
        # Let a restart finish what is in flight, but not wait on streams for ever.
        timeout_graceful_shutdown=10,
    )


if __name__ == "__main__":
    main()
