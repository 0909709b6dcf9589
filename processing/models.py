"""What pipelines write. For now the echo job's ledger; memories come with documents."""

from __future__ import annotations

from django.db import models
from django.utils import timezone


class EchoWrite(models.Model):
    """One row per echo attempt that wrote its payload: the fault-injection suite counts
    them to prove no job's effects ran twice. Not a foreign key: the ledger outlives the
    purge of the jobs it counts."""

    job_id = models.UUIDField(db_index=True)
    attempt = models.PositiveIntegerField()
    payload = models.JSONField(null=True, blank=True)
    written_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return f"echo {self.job_id} attempt {self.attempt}"
