"""Debian's Chromium for the tests that need a real browser (the live page, ``render_js``).

Outside CI a test that needs it skips with a clear message when it is missing; under
``CI=true`` it is installed (apt-get, as root) or the test fails.
"""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest


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
