"""Input and output shapes of the collections and memories API."""

from __future__ import annotations

from rest_framework import serializers

from jobs.api.base import StrictSerializer
from processing.models import Collection, Memory


class CollectionSerializer(serializers.ModelSerializer):
    memory_count = serializers.IntegerField(read_only=True, required=False)

    class Meta:
        model = Collection
        fields = [
            "id",
            "name",
            "description",
            "chunk_size",
            "chunk_overlap",
            "memory_count",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CollectionWriteSerializer(StrictSerializer):
    name = serializers.CharField(max_length=200)
    description = serializers.CharField(max_length=10_000, required=False, allow_blank=True)
    chunk_size = serializers.IntegerField(min_value=200, max_value=20_000, required=False)
    chunk_overlap = serializers.IntegerField(min_value=0, max_value=5_000, required=False)


class MemorySerializer(serializers.ModelSerializer):
    job_id = serializers.UUIDField(read_only=True, allow_null=True)

    class Meta:
        model = Memory
        fields = [
            "id",
            "collection_id",
            "job_id",
            "source",
            "source_type",
            "chunk_index",
            "page",
            "position",
            "text",
            "content_hash",
            "tags",
            "metadata",
            "importance",
            "pinned",
            "access_count",
            "last_accessed_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class CollectionPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = CollectionSerializer(many=True)


class MemoryPageSerializer(serializers.Serializer):
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = MemorySerializer(many=True)


class MemoryUpdateSerializer(StrictSerializer):
    tags = serializers.ListField(
        child=serializers.CharField(max_length=100), max_length=50, required=False
    )
    metadata = serializers.DictField(required=False)
    importance = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    pinned = serializers.BooleanField(
        required=False, help_text="Pinned memories are never consolidated."
    )


class ConsolidatedSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="summary: of several chunks, archived")
    archive_id = serializers.IntegerField()
    memories = serializers.IntegerField(help_text="How many memories it stands for.")
    restore = serializers.CharField(help_text="POST here to restore the originals.")


class SearchHitSerializer(serializers.Serializer):
    memory_id = serializers.IntegerField()
    score = serializers.FloatField()
    snippet = serializers.CharField(help_text="HTML-escaped text; matches in <mark>.")
    text = serializers.CharField()
    source = serializers.CharField()
    page = serializers.IntegerField(allow_null=True)
    position = serializers.DictField()
    collection_id = serializers.UUIDField()
    job_id = serializers.UUIDField(allow_null=True)
    tags = serializers.ListField(child=serializers.CharField())
    consolidated = ConsolidatedSerializer(
        allow_null=True, help_text="Set when the hit is a summary that consolidation made."
    )


class MemoryArchiveSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    collection_id = serializers.UUIDField()
    kind = serializers.CharField(help_text="summary or merge")
    replacement_id = serializers.IntegerField(
        allow_null=True, help_text="The memory that stands for them now."
    )
    count = serializers.IntegerField()
    original_bytes = serializers.IntegerField()
    stored_bytes = serializers.IntegerField()
    job_id = serializers.UUIDField(allow_null=True)
    created_at = serializers.DateTimeField()
    restored_at = serializers.DateTimeField(allow_null=True)


class MemoryArchivePageSerializer(serializers.Serializer):
    next = serializers.CharField(allow_null=True)
    previous = serializers.CharField(allow_null=True)
    results = MemoryArchiveSerializer(many=True)


class SearchResponseSerializer(serializers.Serializer):
    query = serializers.CharField()
    results = SearchHitSerializer(many=True)
    count = serializers.IntegerField()
    took_ms = serializers.FloatField()


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=1000)
    collection_id = serializers.UUIDField(required=False)
    job_id = serializers.UUIDField(required=False)
    tag = serializers.CharField(max_length=100, required=False)
    limit = serializers.IntegerField(min_value=1, max_value=100, default=10)
    offset = serializers.IntegerField(min_value=0, max_value=10_000, default=0)
