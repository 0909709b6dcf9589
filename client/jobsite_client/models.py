"""What the API answers, typed: a ``Job`` has attributes for the fields every caller
reads, and answers ``job["field"]`` for any field of the JSON (as the hosted APIs' SDKs
return dicts, code written against them keeps working)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

TERMINAL = ("completed", "failed", "cancelled")


@dataclass(frozen=True)
class Record(Mapping[str, Any]):
    """An answer's JSON, readable as a mapping."""

    raw: dict[str, Any] = field(repr=False)

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self):
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)


@dataclass(frozen=True)
class Job(Record):
    id: str = ""
    type: str = ""
    status: str = ""
    progress: float = 0.0
    current_step: str = ""
    result: Any = None
    error: dict[str, Any] | None = None
    attempts: int = 0
    created_at: str | None = None
    completed_at: str | None = None

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Job:
        return cls(
            raw=raw,
            id=str(raw.get("job_id") or raw.get("id") or ""),
            type=raw.get("type", ""),
            status=raw.get("status", ""),
            progress=float(raw.get("progress") or 0.0),
            current_step=raw.get("current_step") or "",
            result=raw.get("result"),
            error=raw.get("error"),
            attempts=int(raw.get("attempts") or 0),
            created_at=raw.get("created_at"),
            completed_at=raw.get("completed_at"),
        )

    @property
    def done(self) -> bool:
        """Ended: completed, failed or cancelled."""
        return self.status in TERMINAL


@dataclass(frozen=True)
class Batch(Record):
    id: str = ""
    status: str = ""
    job_ids: tuple[str, ...] = ()
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Batch:
        jobs = raw.get("jobs")
        listed = [j.get("job_id") or j.get("id") for j in jobs] if isinstance(jobs, list) else []
        ids = raw.get("job_ids") or listed
        return cls(
            raw=raw,
            id=str(raw.get("batch_id") or raw.get("id") or ""),
            status=raw.get("status", ""),
            job_ids=tuple(str(i) for i in ids),
            counts=dict(raw.get("counts") or {}),
        )
