"""``python -m jobsite.serve``: the web process, the ASGI app under uvicorn, as ``make run``,
the tests, the benchmarks and the compose file all start it (one place for its options).
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
    args = parser.parse_args(argv)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
    uvicorn.run(
        "jobsite.asgi:application",
        host=args.host,
        port=args.port,
        workers=args.workers,
        access_log=args.access_log,
        proxy_headers=True,
        forwarded_allow_ips=os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1"),
    )


if __name__ == "__main__":
    main()
