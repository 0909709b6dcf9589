"""Task names are a contract with messages already in queues: a rename shows here."""

import pytest

from jobsite.celery import app

pytestmark = pytest.mark.services_free


def test_registered_task_names():
    app.loader.import_default_modules()
    ours = {name for name in app.tasks if not name.startswith("celery.")}
    assert ours == {
        "jobs.run",
        "jobs.maintenance.sweep",
        "jobs.tally",
        "jobs.maintenance.purge",
        "jobs.schedule.purge",
        "processing.schedule_consolidation",
        "jobs.webhooks.deliver",
        "processing.flush_memory_access",
    }
