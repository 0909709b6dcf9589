"""``make test``'s two suites: what reaches no service runs in the first only, and the mark
that says so cannot hide a test that reaches one."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.services_free

ROOT = Path(__file__).resolve().parent.parent

TESTS = """
import pytest

@pytest.mark.services_free
def test_parses():
    assert True

def test_plain():
    assert True

@pytest.mark.services_free
def test_reads_a_row({fixture}):
    assert True
"""


def collect(tmp_path: Path, fixture: str, **env: str) -> subprocess.CompletedProcess[str]:
    module = tmp_path / "test_marked.py"
    module.write_text(TESTS.format(fixture=fixture))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "--collect-only", "-q",
         "-c", str(ROOT / "pyproject.toml"), "--rootdir", str(ROOT), str(module)],
        cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def test_a_services_free_test_that_uses_the_database_stops_the_run(tmp_path):
    done = collect(tmp_path, "db")
    assert done.returncode == 4, done.stdout + done.stderr  # a usage error, nothing runs
    assert "marked services_free but reaches the database" in done.stderr
    assert "::test_reads_a_row (db)" in done.stderr and "test_parses" not in done.stderr


def test_the_repeat_suite_leaves_out_only_the_services_free_tests(tmp_path):
    first = collect(tmp_path, "tmp_path")
    assert first.returncode == 0, first.stdout + first.stderr
    assert "3 tests collected" in first.stdout
    repeat = collect(tmp_path, "tmp_path", JOBSITE_SUITE="repeat")
    assert repeat.returncode == 0, repeat.stdout + repeat.stderr
    assert "test_plain" in repeat.stdout and "test_parses" not in repeat.stdout
    assert "1/3 tests collected (2 deselected)" in repeat.stdout
