"""The Job lifecycle: models, services, the API, the admin, Celery tasks and signals.

``from jobs import progress`` gives a running job's code its one progress call. It is
looked up on first use (PEP 562), so importing any ``jobs.*`` module does not load the
runtime.
"""

from typing import Any

__all__ = ["progress"]


def __getattr__(name: str) -> Any:
    if name == "progress":
        from jobs.runtime import progress

        return progress
    raise AttributeError(f"module 'jobs' has no attribute {name!r}")
