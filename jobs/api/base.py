"""What pipelines and apps built on jobs may import.

``processing`` (and any app like it) needs a few things from ``jobs``: the error classes a
job or a request fails with, and the building blocks of an API that looks like the jobs
API (strict serializers, UTC date filters, newest-first cursors, the slash-optional
routes, the storable-JSON check) and a model instance built from a raw row
(``model_from_row``, for hand-written hot queries). Naming them here is the contract:
``jobs`` may move its internals around as long as these names keep working. (An app's
admin builds on ``jobs.admin.TextSafeAdmin``, from the admin package itself.)

The error classes are imported eagerly, the rest on first use (PEP 562): those pull in
DRF and the jobs models, which need configured settings and a ready app registry, while
an extractor (``processing.documents``) must stay importable without Django, and a
pipeline module imported from ``AppConfig.ready`` must not load the API on the way.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from jobs.errors import Conflict, InvalidInput, JobError, NotFound

if TYPE_CHECKING:
    from jobs.api.filters import NewestFirst, UtcIsoDateTimeFilter
    from jobs.api.parsers import check_json
    from jobs.api.routing import both
    from jobs.api.serializers import StrictSerializer
    from jobs.writes import model_from_row

__all__ = [
    "Conflict",
    "InvalidInput",
    "JobError",
    "NewestFirst",
    "NotFound",
    "StrictSerializer",
    "UtcIsoDateTimeFilter",
    "both",
    "check_json",
    "model_from_row",
]

# Where each lazily loaded name lives.
_LAZY = {
    "NewestFirst": "jobs.api.filters",
    "UtcIsoDateTimeFilter": "jobs.api.filters",
    "check_json": "jobs.api.parsers",
    "both": "jobs.api.routing",
    "StrictSerializer": "jobs.api.serializers",
    "model_from_row": "jobs.writes",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # looked up once; later imports find it directly
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
