"""The Celery entry points of processing (pipelines run through ``jobs.run``)."""

from __future__ import annotations

from celery import shared_task

from processing import access


@shared_task(name="processing.flush_memory_access", ignore_result=True)
def flush_memory_access() -> int:
    return access.flush()


@shared_task(name="processing.schedule_consolidation", ignore_result=True)
def schedule_consolidation() -> int:
    """A consolidation job for each collection with anything to consolidate."""
    from processing import consolidation

    return consolidation.start_scheduled()
