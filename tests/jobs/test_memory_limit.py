"""The per-job memory cap: a hostile file meets a MemoryError, and the next job does not."""

from __future__ import annotations

import resource

import pytest

from jobs.runtime import memory_limit

pytestmark = pytest.mark.services_free


def test_a_job_may_allocate_its_allowance_and_no_more_and_the_cap_is_lifted_after():
    with memory_limit(200):
        small = bytearray(50 * 1024 * 1024)
        del small
        with pytest.raises(MemoryError):
            bytearray(400 * 1024 * 1024)
    big = bytearray(400 * 1024 * 1024)  # the next job is not held to this one's cap
    del big


def test_zero_means_no_cap():
    before = resource.getrlimit(resource.RLIMIT_DATA)
    with memory_limit(0):
        assert resource.getrlimit(resource.RLIMIT_DATA) == before  # not even a generous one
        big = bytearray(300 * 1024 * 1024)
        del big
    assert resource.getrlimit(resource.RLIMIT_DATA) == before
