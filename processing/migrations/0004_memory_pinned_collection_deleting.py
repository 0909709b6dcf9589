"""Pinned memories, and collections being deleted by a job.

``pinned`` is added with plain SQL: Django adds a NOT NULL column with a default on SQLite
by rebuilding the table, which would drop the triggers that keep the FTS5 search index in
step (``processing.search``). ``ADD COLUMN ... DEFAULT`` is one statement on both
databases and instant on PostgreSQL 11 and later, however many memories there are.
"""

from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("processing", "0003_memory_search_index")]

    operations = [
        migrations.AddField(
            model_name="collection",
            name="deleting_since",
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddField(
                    model_name="memory",
                    name="pinned",
                    field=models.BooleanField(default=False),
                ),
            ],
            database_operations=[
                migrations.RunSQL(
                    "ALTER TABLE processing_memory ADD COLUMN pinned boolean NOT NULL "
                    "DEFAULT false",
                    "ALTER TABLE processing_memory DROP COLUMN pinned",
                ),
            ],
        ),
    ]
