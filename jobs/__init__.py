"""The Job lifecycle: models, services, the API, the admin, Celery tasks and signals.

``from jobs import progress`` gives a running job's code its one progress call.
"""

from jobs.runtime import progress

__all__ = ["progress"]
