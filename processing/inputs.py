"""Where a file-taking pipeline's file comes from (the upload, or a guarded fetch of its
``file_url``) and its content hash: shared by documents and media, so both read a URL
through the same bounds and key a file's memories the same way."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from django.conf import settings

from jobs.runtime import Progress


def input_file(params: Any, progress: Progress, scratch: Path) -> tuple[Path, str]:
    """The file to read and the name its memories cite. ``params`` has ``file_url`` and
    ``filename``; an uploaded file (``progress.input_path``) comes first."""
    if progress.input_path:
        path = Path(progress.input_path)
        return path, params.filename or path.name
    from jobs import outbound

    url = str(params.file_url)
    progress(0, "downloading")
    result = outbound.fetch(
        url,
        dest=scratch / "download",
        max_bytes=settings.JOBSITE_MAX_UPLOAD_BYTES,
        timeout=settings.JOBSITE_FETCH_TIMEOUT,
        max_redirects=settings.JOBSITE_FETCH_MAX_REDIRECTS,
        allow_hosts=outbound.allowed_hosts_from_settings(),
    )
    assert result.path is not None
    return result.path, params.filename or url


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest()
