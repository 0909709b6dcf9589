"""Renders run in a process of their own by ``test_web_render.py``: one that is SIGKILLed
mid-render (its browser must die with it) and one inside an isolated network namespace
under strace (what the browser itself tries to send).

``python -m tests.processing.render_child orphan`` prints ``{"pid": ..., "directory": ...}``
of its browser once it runs, then renders a page that never ends for a minute.
``python -m tests.processing.render_child isolated STRACE_LOG`` renders the address-matrix
page and a WebRTC page with the browser under strace and prints the proxy's view as JSON.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from typing import Any

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "jobsite.settings")
django.setup()

import pytest  # noqa: E402

from jobs.outbound import FetchError  # noqa: E402
from processing.web import render as render_module  # noqa: E402
from tests.netguard import guarded_network  # noqa: E402
from tests.origin import OriginHandler, redirect_to_query, serving, trickle  # noqa: E402

WEBRTC_PAGE = """<html><body><p id="ice">gathering</p><script>
const pc = new RTCPeerConnection({iceServers: [
  {urls: "stun:10.0.0.1:3478"},
  {urls: "turn:10.0.0.2:3478?transport=udp", username: "u", credential: "p"}]});
pc.createDataChannel("x");
const found = [];
pc.onicecandidate = (e) => {
  if (e.candidate) found.push(e.candidate.candidate);
  else document.getElementById("ice").textContent = "candidates:" + JSON.stringify(found);
};
pc.createOffer().then((offer) => pc.setLocalDescription(offer));
</script></body></html>"""


def orphan() -> None:
    """Render a page whose script never stops, telling the parent where the browser is."""

    class Announced(render_module._Browser):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            print(json.dumps({"pid": self.process.pid, "directory": str(self.directory)}))
            sys.stdout.flush()

    render_module._Browser = Announced  # type: ignore[misc]

    def loop(handler: OriginHandler) -> None:
        handler.html("<p>busy</p><script>while (true) {}</script>")

    with serving({"/loop": loop}) as origin:
        render_module.render(
            origin.url("/loop"),
            timeout=60,
            max_bytes=1_000_000,
            memory_mb=4096,
            allow_hosts=["127.0.0.1"],
        )


def isolated(strace_log: str) -> None:
    """Render the WebRTC page with the browser under strace; print what the proxy saw."""
    wrapper_dir = Path(tempfile.mkdtemp(prefix="render-strace-"))
    wrapper = wrapper_dir / "chromium"
    chromium = render_module.chromium_binary()
    strace = shutil.which("strace")
    wrapper.write_text(
        "#!/bin/sh\n"
        f"exec {strace} -f -qq -yy -A -e trace=connect,sendto,sendmsg,sendmmsg -e signal=none "
        f'-o {strace_log} {chromium} "$@"\n'
    )
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)

    def webrtc(handler: OriginHandler) -> None:
        handler.html(WEBRTC_PAGE)

    def matrix(handler: OriginHandler) -> None:
        port = handler.server.port
        handler.html(
            f'<p>matrix</p><img src="http://10.0.0.1:{port}/x/img">'
            f'<script src="http://169.254.169.254:{port}/x/script"></script>'
            f'<iframe src="http://[fd00::1]:{port}/x/frame"></iframe>'
            f'<script src="https://192.168.1.1:{port}/x/tls"></script>'
            f'<script src="/to?http://100.64.0.1:{port}/x/redirect"></script>'
            f'<script>fetch("http://internal.test:{port}/x/fetch").catch(() => 0)</script>'
        )

    monkeypatch = pytest.MonkeyPatch()
    results: dict[str, Any] = {}
    try:
        with (
            guarded_network(monkeypatch) as net,
            serving(
                {"/webrtc": webrtc, "/matrix": matrix, "/to": redirect_to_query, "/slow": trickle}
            ) as origin,
        ):
            net.dns["internal.test"] = ["10.1.2.3"]
            for name in ("webrtc", "matrix"):
                try:
                    rendered = render_module.render(
                        origin.url(f"/{name}"),
                        timeout=20,
                        max_bytes=5_000_000,
                        memory_mb=4096,
                        allow_hosts=["127.0.0.1"],
                        images=True,
                        binary=str(wrapper),
                    )
                except FetchError as exc:
                    results[name] = {"error": exc.message}
                    continue
                results[name] = {
                    "html": rendered.html,
                    "log": [[e.method, e.target, e.allowed] for e in rendered.requests],
                }
            results["origin_port"] = origin.port
            results["origin_paths"] = origin.paths
            results["outside"] = [list(address) for address in net.outside]
    finally:
        monkeypatch.undo()
        shutil.rmtree(wrapper_dir, ignore_errors=True)
    print(json.dumps(results))


if __name__ == "__main__":
    if sys.argv[1] == "orphan":
        orphan()
    else:
        isolated(sys.argv[2])
