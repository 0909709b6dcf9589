"""Registers every pipeline's job type once Django is ready."""

from django.apps import AppConfig


class ProcessingConfig(AppConfig):
    name = "processing"
    verbose_name = "Processing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from processing import echo  # noqa: F401  (registers the job type)
