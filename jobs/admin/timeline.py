"""The event timeline on a job's page: the last events, drawn by a template.

The markup lives in ``templates/admin/jobs/job/timeline.html`` so that Django's
autoescaping covers it: actors and reasons are text a client or a task influenced.
Only the status badges arrive pre-rendered (they are escaped by ``status_badge``).
"""

from __future__ import annotations

from dataclasses import dataclass

from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.http import urlencode
from django.utils.safestring import SafeString

from jobs.admin.render import precise, status_badge
from jobs.models import Job, JobEvent

# Events shown inline on a job's page; the rest are one link away.
TIMELINE_MAX = 200
TEMPLATE = "admin/jobs/job/timeline.html"
# Where an event has no status on one side of its transition (notes, cancel requests).
NO_STATUS = "·"


@dataclass(frozen=True)
class TimelineRow:
    """One event as the table shows it; formatting stays in Python, markup in the template."""

    at: str
    kind: str
    from_badge: SafeString | str
    to_badge: SafeString | str
    actor: str
    reason: str
    attempt: int

    @classmethod
    def of(cls, event: JobEvent) -> TimelineRow:
        return cls(
            at=precise(event.at),
            kind=event.get_kind_display(),
            from_badge=status_badge(event.from_status) if event.from_status else NO_STATUS,
            to_badge=status_badge(event.to_status) if event.to_status else NO_STATUS,
            actor=event.actor,
            reason=event.reason,
            attempt=event.attempt,
        )


def timeline_html(job: Job) -> SafeString | str:
    """The last events, oldest first. Newest first from the index (a job can have
    thousands), then reversed: the page reads as a story."""
    events = list(job.events.order_by("-id")[: TIMELINE_MAX + 1])
    more = len(events) > TIMELINE_MAX
    events = events[:TIMELINE_MAX][::-1]
    if not events:
        return "No events."
    context = {
        "rows": [TimelineRow.of(event) for event in events],
        "more": more,
        "limit": TIMELINE_MAX,
        "events_url": f"{reverse('admin:jobs_jobevent_changelist')}?"
        f"{urlencode({'job__id__exact': str(job.pk)})}",
    }
    return render_to_string(TEMPLATE, context)
