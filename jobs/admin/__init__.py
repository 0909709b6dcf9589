"""The operators' admin: look at jobs, their events and API keys; steer jobs through services.

Nothing here writes ``Job.status``: the actions and the per-job buttons call
``jobs.services.job_cancel`` / ``job_restart`` and report what happened with
``message_user``. Every Job field is read-only, and the Job form never saves: a full
``save()`` of a row read seconds ago would overwrite what a worker wrote meanwhile.
The lists are built to stay fast on millions of rows (no COUNT(*) of the whole table,
no SELECT DISTINCT for filters, sorting only on an indexed column).

    base       TextSafeAdmin: pages that render whatever a row holds (every admin's base)
    lists      fast lists: estimated counts, deferred columns, the job type filter
    render     badges, progress bars, JSON and times
    steering   cancel and restart, one path for the bulk actions and the buttons
    timeline   the events table on a job's page (templates/admin/jobs/job/timeline.html)
    job, events, keys, deliveries, batches   the ModelAdmins, registered on import

Django's autodiscovery imports this package; importing the admin modules here is what
registers them. The names below stay importable from ``jobs.admin`` (``processing.admin``
builds on ``TextSafeAdmin``).
"""

from jobs.admin.base import EscapingTemplateResponse, TextSafeAdmin
from jobs.admin.batches import BatchAdmin
from jobs.admin.deliveries import DeliveryAdmin
from jobs.admin.events import JobEventAdmin
from jobs.admin.job import ACTION_MAX, JobAdmin
from jobs.admin.keys import ApiKeyAdmin, RevokedFilter
from jobs.admin.lists import (
    ESTIMATE_FROM,
    LIST_DEFERRED,
    EstimatedCountPaginator,
    JobChangeList,
    JobTypeFilter,
    estimated_row_count,
    job_id_from,
)
from jobs.admin.render import PRETTY_MAX, precise, pretty_json, status_badge
from jobs.admin.steering import actor_of, steer
from jobs.admin.timeline import TIMELINE_MAX

__all__ = [
    "ACTION_MAX",
    "ESTIMATE_FROM",
    "LIST_DEFERRED",
    "PRETTY_MAX",
    "TIMELINE_MAX",
    "ApiKeyAdmin",
    "BatchAdmin",
    "DeliveryAdmin",
    "EscapingTemplateResponse",
    "EstimatedCountPaginator",
    "JobAdmin",
    "JobChangeList",
    "JobEventAdmin",
    "JobTypeFilter",
    "RevokedFilter",
    "TextSafeAdmin",
    "actor_of",
    "estimated_row_count",
    "job_id_from",
    "precise",
    "pretty_json",
    "status_badge",
    "steer",
]
