"""The search index beside the memories table: a generated tsvector with a GIN index on
PostgreSQL, an FTS5 table kept by triggers on SQLite (``processing.search``)."""

from django.db import migrations


def create_index(apps, schema_editor):
    from processing.search import index_sql

    for statement in index_sql(schema_editor.connection.vendor):
        schema_editor.execute(statement)


def drop_index(apps, schema_editor):
    from processing.search import index_sql

    for statement in index_sql(schema_editor.connection.vendor, drop=True):
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("processing", "0002_collections_memories")]

    operations = [migrations.RunPython(create_index, drop_index)]
