"""Collections, memories and search: validate, call one service or selector, serialize."""

from __future__ import annotations

from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from jobs.api.base import NewestFirst
from jobs.api.serializers import JobSerializer
from jobs.api.views import created_headers, job_response
from jobs.auth import actor_for
from processing import access, search, selectors, services
from processing.api.filters import MemoryFilter
from processing.api.serializers import (
    CollectionPageSerializer,
    CollectionSerializer,
    CollectionWriteSerializer,
    MemoryArchivePageSerializer,
    MemoryArchiveSerializer,
    MemoryPageSerializer,
    MemorySerializer,
    MemoryUpdateSerializer,
    SearchQuerySerializer,
    SearchResponseSerializer,
)

COLLECTION_ID = OpenApiParameter("collection_id", OpenApiTypes.UUID, OpenApiParameter.PATH)
MEMORY_ID = OpenApiParameter("memory_id", OpenApiTypes.INT, OpenApiParameter.PATH)


def _valid(serializer_class, data, **kwargs):
    serializer = serializer_class(data=data, **kwargs)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class CollectionListCreateApi(APIView):
    @extend_schema(
        operation_id="collections_list",
        parameters=[
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1-500, default 50"),
        ],
        responses=CollectionPageSerializer,
    )
    def get(self, request: Request) -> Response:
        collections = selectors.collection_list(owner=request.user).annotate(
            memory_count=Count("memories")
        )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(collections, request, view=self)
        return paginator.get_paginated_response(CollectionSerializer(page, many=True).data)

    @extend_schema(
        operation_id="collections_create",
        request=CollectionWriteSerializer,
        responses={201: CollectionSerializer},
    )
    def post(self, request: Request) -> Response:
        data = _valid(CollectionWriteSerializer, request.data)
        collection = services.collection_create(owner=request.user, **data)
        collection.memory_count = 0
        return Response(CollectionSerializer(collection).data, status=201)


class CollectionDetailApi(APIView):
    @extend_schema(
        operation_id="collections_retrieve",
        parameters=[COLLECTION_ID],
        responses=CollectionSerializer,
    )
    def get(self, request: Request, collection_id: str) -> Response:
        collection = selectors.collection_get(owner=request.user, collection_id=collection_id)
        collection.memory_count = collection.memories.count()
        return Response(CollectionSerializer(collection).data)

    @extend_schema(
        operation_id="collections_update",
        parameters=[COLLECTION_ID],
        request=CollectionWriteSerializer(partial=True),
        responses=CollectionSerializer,
    )
    def patch(self, request: Request, collection_id: str) -> Response:
        collection = selectors.collection_get(owner=request.user, collection_id=collection_id)
        data = _valid(CollectionWriteSerializer, request.data, partial=True)
        collection = services.collection_update(collection, **data)
        collection.memory_count = collection.memories.count()
        return Response(CollectionSerializer(collection).data)

    @extend_schema(
        operation_id="collections_delete",
        parameters=[COLLECTION_ID],
        responses={204: None, 202: JobSerializer},
        description="A collection of up to JOBSITE_COLLECTION_DELETE_INLINE memories (1,000) "
        "is deleted at once: 204. A larger one is gone for you at once, and a batch_operation "
        "job deletes its memories in chunks, then the collection: 202 with the job.",
    )
    def delete(self, request: Request, collection_id: str) -> Response:
        collection = selectors.collection_get(owner=request.user, collection_id=collection_id)
        job = services.collection_delete(collection, actor=actor_for(request))
        if job is None:
            return Response(status=204)
        return job_response(request, job, status=202, headers=created_headers(job, True))


class MemoryListApi(APIView):
    @extend_schema(
        operation_id="memories_list",
        parameters=[
            OpenApiParameter("collection_id", OpenApiTypes.UUID),
            OpenApiParameter("job_id", OpenApiTypes.UUID),
            OpenApiParameter("tag", OpenApiTypes.STR),
            OpenApiParameter("source", OpenApiTypes.STR),
            OpenApiParameter("created_after", OpenApiTypes.DATETIME),
            OpenApiParameter("created_before", OpenApiTypes.DATETIME),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1-500, default 50"),
        ],
        responses=MemoryPageSerializer,
    )
    def get(self, request: Request) -> Response:
        filterset = MemoryFilter(
            request.query_params, queryset=selectors.memory_list(owner=request.user)
        )
        if not filterset.is_valid():
            raise exceptions.ValidationError(filterset.errors)
        paginator = NewestFirst()
        page = paginator.paginate_queryset(filterset.qs, request, view=self)
        return paginator.get_paginated_response(MemorySerializer(page, many=True).data)


class MemoryDetailApi(APIView):
    @extend_schema(
        operation_id="memories_retrieve", parameters=[MEMORY_ID], responses=MemorySerializer
    )
    def get(self, request: Request, memory_id: str) -> Response:
        memory = selectors.memory_get(owner=request.user, memory_id=memory_id)
        access.record([memory.pk])
        return Response(MemorySerializer(memory).data)

    @extend_schema(
        operation_id="memories_update",
        parameters=[MEMORY_ID],
        request=MemoryUpdateSerializer,
        responses=MemorySerializer,
    )
    def patch(self, request: Request, memory_id: str) -> Response:
        memory = selectors.memory_get(owner=request.user, memory_id=memory_id)
        data = _valid(MemoryUpdateSerializer, request.data)
        return Response(MemorySerializer(services.memory_update(memory, **data)).data)

    @extend_schema(operation_id="memories_delete", parameters=[MEMORY_ID], responses=None)
    def delete(self, request: Request, memory_id: str) -> Response:
        memory = selectors.memory_get(owner=request.user, memory_id=memory_id)
        services.memory_delete(memory)
        return Response(status=204)


class MemorySearchApi(APIView):
    @extend_schema(
        operation_id="memories_search",
        parameters=[SearchQuerySerializer],
        responses=SearchResponseSerializer,
        description='Ranked full-text search. Words are all required; "quoted phrases" '
        "match in order; -word excludes. Snippets are HTML-escaped with matches in <mark>.",
    )
    def get(self, request: Request) -> Response:
        params = _valid(SearchQuerySerializer, request.query_params)
        result = selectors.memory_search(owner=request.user, **params)
        access.record([hit.memory.pk for hit in result.hits])
        results = [_hit(hit) for hit in result.hits]
        return Response(
            {
                "query": params["q"],
                "results": results,
                "count": len(results),
                "took_ms": round(result.took_ms, 2),
            }
        )


def _hit(hit: search.Hit) -> dict:
    memory = hit.memory
    return {
        "memory_id": memory.pk,
        "score": round(hit.score, 6),
        "snippet": hit.snippet,
        "text": memory.text,
        "source": memory.source,
        "page": memory.page,
        "position": memory.position,
        "collection_id": str(memory.collection_id),
        "job_id": str(memory.job_id) if memory.job_id else None,
        "tags": memory.tags,
        "consolidated": (memory.metadata or {}).get("consolidated"),
    }


class MemoryArchiveListApi(APIView):
    @extend_schema(
        operation_id="memory_archives_list",
        parameters=[
            OpenApiParameter("collection_id", OpenApiTypes.UUID),
            OpenApiParameter("cursor", OpenApiTypes.STR),
            OpenApiParameter("limit", OpenApiTypes.INT, description="1-500, default 50"),
        ],
        responses=MemoryArchivePageSerializer,
        description="What consolidation archived in your collections: the originals of "
        "summaries and the duplicates merged into one memory.",
    )
    def get(self, request: Request) -> Response:
        archives = selectors.archive_list(
            owner=request.user, collection_id=request.query_params.get("collection_id")
        )
        paginator = NewestFirst()
        page = paginator.paginate_queryset(archives, request, view=self)
        return paginator.get_paginated_response(MemoryArchiveSerializer(page, many=True).data)


class MemoryArchiveRestoreApi(APIView):
    @extend_schema(
        operation_id="memory_archives_restore",
        parameters=[OpenApiParameter("archive_id", OpenApiTypes.INT, OpenApiParameter.PATH)],
        request=None,
        responses=MemoryArchiveSerializer,
        description="Put the archived memories back under their ids, and remove the summary "
        "that stood for them (or the references of the duplicate that was kept). 409 when "
        "restored already, or when their places are taken by newer memories.",
    )
    def post(self, request: Request, archive_id: str) -> Response:
        archive = selectors.archive_get(owner=request.user, archive_id=archive_id)
        services.memory_archive_restore(archive)
        archive.refresh_from_db()
        return Response(MemoryArchiveSerializer(archive).data)
