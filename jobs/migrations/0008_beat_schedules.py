"""celery-beat's schedules as rows (django-celery-beat's database scheduler), so they exist
after ``migrate`` and the admin shows and edits them: the daily purge (03:30 UTC) and
consolidation (04:30 UTC), which start jobs (``jobs/schedules.py``), and the sweeper and
access-count flush, whose intervals beat keeps in step with settings when it starts. An
edited daily schedule is kept: this runs once, and never overwrites a row that exists,
except the purge's, which ran hourly as a plain task before and now starts a job."""

from django.conf import settings
from django.db import migrations

DAILY = {
    "jobsite-purge": ("jobs.schedule.purge", "30", "3", "Purge job records past retention"),
    "jobsite-consolidation": (
        "processing.schedule_consolidation",
        "30",
        "4",
        "Consolidate every collection with something to consolidate",
    ),
}
INTERVALS = {
    "jobsite-sweep": ("jobs.maintenance.sweep", settings.JOBSITE_SWEEP_INTERVAL, 5),
    "jobsite-memory-access": (
        "processing.flush_memory_access",
        settings.JOBSITE_ACCESS_FLUSH_INTERVAL,
        30,
    ),
}


def create(apps, schema_editor):
    periodic = apps.get_model("django_celery_beat", "PeriodicTask")
    crontab = apps.get_model("django_celery_beat", "CrontabSchedule")
    interval = apps.get_model("django_celery_beat", "IntervalSchedule")
    for name, (task, minute, hour, description) in DAILY.items():
        schedule, _ = crontab.objects.get_or_create(
            minute=minute,
            hour=hour,
            day_of_month="*",
            month_of_year="*",
            day_of_week="*",
            timezone="UTC",
        )
        values = {
            "task": task,
            "crontab": schedule,
            "interval": None,
            "queue": "maintenance",
            "description": description,
            "enabled": True,
        }
        if name == "jobsite-purge":
            periodic.objects.update_or_create(name=name, defaults=values)
        else:
            periodic.objects.get_or_create(name=name, defaults=values)
    for name, (task, seconds, expires) in INTERVALS.items():
        schedule, _ = interval.objects.get_or_create(every=max(1, round(seconds)), period="seconds")
        periodic.objects.get_or_create(
            name=name,
            defaults={
                "task": task,
                "interval": schedule,
                "queue": "maintenance",
                "expire_seconds": expires,
                "enabled": True,
            },
        )


def remove(apps, schema_editor):
    periodic = apps.get_model("django_celery_beat", "PeriodicTask")
    periodic.objects.filter(name__in=[*DAILY, *INTERVALS]).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0007_job_archive"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create, remove)]
