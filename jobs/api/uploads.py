"""Uploads stream to a temporary file and stop at the size limit (no Content-Length
needed: chunked and lying requests are cut off too)."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from jobs.errors import PayloadTooLarge


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    """One handler per request: the limit is on all of its file parts together, so extra
    parts (refused later, by the parser) cannot each write a limit's worth to disk."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received = 0

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > settings.JOBSITE_MAX_UPLOAD_BYTES:
            self.file.close()
            raise PayloadTooLarge(
                f"Uploaded file is larger than {settings.JOBSITE_MAX_UPLOAD_BYTES} bytes"
            )
        return super().receive_data_chunk(raw_data, start)
