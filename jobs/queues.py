"""Every broker queue Jobsite uses, in one place, with what belongs in each."""

from django.db import models


class Queue(models.TextChoices):
    # Short general jobs (echo, Django @task functions).
    DEFAULT = "default"
    # The sweeper and the purge: kept apart so a backlog of jobs never delays recovery.
    MAINTENANCE = "maintenance"
    # CPU-heavy parsing of uploaded documents.
    DOCUMENTS = "documents"
    # Long audio/video work: never let it hold up short jobs.
    MEDIA = "media"
    # Fetching web pages: I/O bound.
    WEB = "web"
    # Webhook deliveries to clients.
    WEBHOOKS = "webhooks"


ALL_QUEUES: tuple[str, ...] = tuple(Queue.values)
