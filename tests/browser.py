"""Debian's Chromium for the tests that need a real browser (the live page, ``render_js``).

Outside CI a test that needs it skips with a clear message when it is missing; under
``CI=true`` it is installed (apt-get, as root) or the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM_FLAGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    # This machine's network is closed: no background calls to Google.
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str:
    """The Chromium binary: found on the PATH, installed under CI, or the test skips."""
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if os.environ.get("CI", "").lower() != "true":
        pytest.skip("Chromium is not installed (apt-get install chromium); runs in CI")
    subprocess.run(
        ["apt-get", "install", "-y", "-q", "chromium"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )
    found = shutil.which("chromium")
    assert found, "apt-get installed no chromium binary"
    return found


def launch() -> Iterator[Any]:
    """Chromium driven by Playwright, for a module's tests (the ``browser`` fixture)."""
    from playwright.sync_api import sync_playwright

    path = chromium_path()
    # Playwright's sync API keeps an event loop running in this thread, and Django then
    # refuses the test's own (synchronous) database calls unless told they are safe.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
            yield chromium
            chromium.close()
    finally:
        del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
