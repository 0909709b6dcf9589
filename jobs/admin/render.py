"""Small renderers for the job and event pages: badges, bars, JSON, times.

Params, results, reasons and tracebacks are user input or carry it: everything here
escapes what it is given.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from django.utils.formats import number_format
from django.utils.html import format_html
from django.utils.safestring import SafeString
from django.utils.timezone import localtime

from jobs.models import Job, JobStatus

# Pretty-printed JSON longer than this is cut on the page (results can be megabytes).
PRETTY_MAX = 100_000


def status_badge(status: str) -> SafeString:
    """A status as a coloured pill; the colours live in templates/admin/jobs/styles.html."""
    label = JobStatus(status).label if status in JobStatus.values else status
    return format_html('<span class="jobs-badge jobs-badge--{}">{}</span>', status, label)


def progress_bar(job: Job) -> SafeString:
    """A bar coloured by status; the current step (task-written text) is its tooltip."""
    percent = max(0.0, min(100.0, job.progress))
    return format_html(
        '<progress class="jobs-progress jobs-progress--{}" max="100" value="{}" title="{}">'
        "</progress> {}%",
        job.status,
        f"{percent:.1f}",
        job.current_step,
        f"{percent:.0f}",
    )


def preformatted(text: str) -> SafeString:
    """Text whose line breaks and indents matter (JSON, tracebacks), escaped, in a <pre>."""
    return format_html('<pre class="jobs-pre">{}</pre>', text)


def pretty_json(value: Any) -> SafeString:
    """Indented JSON in a <pre>, escaped: params and results are user input."""
    text = json.dumps(value, indent=2, sort_keys=True, ensure_ascii=False, default=str)
    if len(text) > PRETTY_MAX:
        cut = len(text) - PRETTY_MAX
        text = f"{text[:PRETTY_MAX]}\n… ({number_format(cut, force_grouping=True)} more characters)"
    return preformatted(text)


def precise(moment: datetime) -> str:
    """Events are often milliseconds apart; the admin's default format shows minutes."""
    return localtime(moment).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
