"""Registers every pipeline's job type once Django is ready."""

from django.apps import AppConfig


class ProcessingConfig(AppConfig):
    name = "processing"
    verbose_name = "Processing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Importing a pipeline registers its job type.
        from processing import (  # noqa: F401
            consolidation,
            echo,
            memory_ops,
        )
        from processing.documents import pipeline  # noqa: F401
        from processing.media import pipeline as media_pipeline  # noqa: F401
        from processing.web import pipeline as web_pipeline  # noqa: F401
