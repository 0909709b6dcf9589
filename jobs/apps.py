"""App config: connects the Celery signal handlers and the Django Tasks backend once
Django is ready."""

from django.apps import AppConfig


class JobsConfig(AppConfig):
    name = "jobs"
    verbose_name = "Jobs"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from jobs import (
            schedules,  # noqa: F401  (registers the purge job type)
            signals,  # noqa: F401  (connects the Celery signal handlers)
            taskbackend,  # noqa: F401  (finds Django tasks by their module path)
        )
        from jobs.api import schema  # noqa: F401  (registers the OpenAPI auth scheme)
