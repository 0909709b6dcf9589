"""Drop the single-column indexes Django made for two foreign keys: an index led by the same
column already serves each (job_owner_created and the others; jobevent_job_id), and every
index is one more write on each status change and each event.

Only the indexes are dropped: AlterField on its own would also drop and re-add (so
revalidate, scanning the table under lock) both foreign keys.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("jobs", "0002_partial_status_indexes"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(
                    model_name="job",
                    name="owner",
                    field=models.ForeignKey(
                        blank=True,
                        db_index=False,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="jobs",
                        to=settings.AUTH_USER_MODEL,
                    ),
                ),
                migrations.AlterField(
                    model_name="jobevent",
                    name="job",
                    field=models.ForeignKey(
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="jobs.job",
                    ),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "jobs_job_owner_id_4c884775"',
                    'CREATE INDEX "jobs_job_owner_id_4c884775" ON "jobs_job" ("owner_id")',
                ),
                migrations.RunSQL(
                    'DROP INDEX IF EXISTS "jobs_jobevent_job_id_79067df7"',
                    'CREATE INDEX "jobs_jobevent_job_id_79067df7" ON "jobs_jobevent" ("job_id")',
                ),
            ],
        ),
    ]
