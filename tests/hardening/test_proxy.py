"""The compose file's reverse proxy (``deploy/nginx/jobsite.conf.template``), run with
Debian's nginx in front of the session's web server: what it stops one hop earlier, and
that it passes long-polls and event streams through as they happen."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
import requests
from django.utils import timezone

from tests.helpers import ROOT, wait_for
from tests.plugin import free_port

pytestmark = [pytest.mark.worker]

TEMPLATE = ROOT / "deploy" / "nginx" / "jobsite.conf.template"


def nginx_binary() -> str:
    found = shutil.which("nginx") or (os.path.exists("/usr/sbin/nginx") and "/usr/sbin/nginx")
    if found:
        return found
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("nginx is not installed (apt-get install nginx-light); runs in CI")
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "nginx-light"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    return "/usr/sbin/nginx"


def render(web_port: int, port: int, prefix: Path) -> Path:
    """The template as the nginx image renders it, inside an http block of our own (the
    only change: it listens on a free loopback port)."""
    server = TEMPLATE.read_text().replace("${JOBSITE_WEB}", f"127.0.0.1:{web_port}")
    server = server.replace("listen 8080;", f"listen 127.0.0.1:{port};")
    temp = "".join(
        f"{kind}_temp_path {prefix / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
        f"error_log {prefix / 'error.log'} warn;\n"
        "events { worker_connections 4096; }\n"
        f"http {{\naccess_log off;\n{temp}{server}\n}}\n"
    )
    return conf


@pytest.fixture(scope="module")
def proxy(web_server, tmp_path_factory) -> Iterator[str]:
    binary = nginx_binary()
    prefix = tmp_path_factory.mktemp("nginx")
    port = free_port()
    conf = render(web_server.port, port, prefix)
    check = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(prefix)], capture_output=True)
    assert check.returncode == 0, check.stderr.decode()
    proc = subprocess.Popen(
        [binary, "-c", str(conf), "-p", str(prefix), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"

    def up() -> bool:
        try:
            return requests.get(f"{url}/proxy-health", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_for(up, 15, "nginx")
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(10)


def test_the_api_through_the_proxy(proxy, web, api):
    auth = {"Authorization": f"Bearer {api.api_key}"}
    assert requests.get(f"{proxy}/api/v1/job-types/", headers=auth, timeout=10).status_code == 200
    created = requests.post(f"{proxy}/api/v1/jobs", json={"type": "echo"}, headers=auth, timeout=10)
    assert created.status_code == 202, created.text


def test_streams_pass_through_as_they_happen(proxy, web, api):
    run_at = (timezone.now() + timedelta(hours=1)).isoformat()
    job_id = api.post("/api/v1/jobs/", {"type": "echo", "run_at": run_at}, format="json").json()[
        "job_id"
    ]
    auth = {"Authorization": f"Bearer {api.api_key}"}
    with httpx.stream(
        "GET", f"{proxy}/api/v1/jobs/{job_id}/stream/", headers=auth, timeout=10
    ) as stream:
        lines = stream.iter_lines()
        assert any('"status": "scheduled"' in line for line in lines if line.startswith("data"))
        cancelled_at = time.monotonic()
        api.post(f"/api/v1/jobs/{job_id}/cancel/")
        for line in lines:
            if '"status": "cancelled"' in line:
                break
    assert time.monotonic() - cancelled_at < 2, "the proxy held the event back"


def test_oversized_heads_and_bodies_stop_at_the_proxy(proxy, web):
    big = requests.get(f"{proxy}/api/v1/job-types/", headers={"X-Big": "a" * 40_000}, timeout=10)
    assert big.status_code in (400, 431)
    host, port = proxy.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(
            b"POST /api/v1/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 300000000\r\n\r\n"
        )
        assert sock.recv(200).startswith(b"HTTP/1.1 413 ")


def test_connections_per_client_address_are_capped(proxy, web, api):
    host, port = proxy.removeprefix("http://").split(":")
    head = (
        f"POST /api/v1/jobs/ HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {api.api_key}"
        "\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{"
    ).encode()
    held, refused = [], 0
    for _ in range(300):
        sock = socket.create_connection(
            (host, int(port)), timeout=5, source_address=("127.0.0.77", 0)
        )
        sock.sendall(head)
        held.append(sock)
    time.sleep(0.5)
    for sock in held:
        sock.setblocking(False)
        try:
            if sock.recv(100).startswith(b"HTTP/1.1 429 "):
                refused += 1
        except BlockingIOError:
            pass
        sock.close()
    assert refused >= 300 - 256, f"{refused} refused"
    other = requests.get(
        f"{proxy}/api/v1/job-types/", headers={"Authorization": f"Bearer {api.api_key}"}
    )
    assert other.status_code == 200
