"""Uploads stream to a temporary file and stop at the size limit (no Content-Length
needed: chunked and lying requests are cut off too)."""

from __future__ import annotations

from django.conf import settings
from django.core.files.uploadhandler import TemporaryFileUploadHandler

from jobs.errors import PayloadTooLarge


class LimitedTemporaryFileUploadHandler(TemporaryFileUploadHandler):
    def new_file(self, *args, **kwargs) -> None:
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes | None:
        self.received += len(raw_data)
        if self.received > settings.JOBSITE_MAX_UPLOAD_BYTES:
            self.file.close()
            raise PayloadTooLarge(
                f"Uploaded file is larger than {settings.JOBSITE_MAX_UPLOAD_BYTES} bytes"
            )
        return super().receive_data_chunk(raw_data, start)
