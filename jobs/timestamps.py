"""One way to write a moment, in every response and event: ISO 8601 in UTC, always with
microseconds and a ``Z`` (``2026-12-02T11:42:19.000000Z``), so clients that compare
timestamps as strings, or parse them with one format, see one shape everywhere. The format
is ``JOBSITE_TIMESTAMP_FORMAT``, which DRF's serializer fields use too."""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(UTC).strftime(settings.JOBSITE_TIMESTAMP_FORMAT)
