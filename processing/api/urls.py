"""``/api/v1/`` routes for collections, memories and search, with and without their
trailing slash (``jobs.api.routing``)."""

from jobs.api.base import both
from processing.api import views

urlpatterns = [
    *both("collections/", views.CollectionListCreateApi.as_view(), name="collections"),
    *both(
        "collections/<str:collection_id>/",
        views.CollectionDetailApi.as_view(),
        name="collection",
    ),
    *both("memories/", views.MemoryListApi.as_view(), name="memories"),
    *both("memories/search", views.MemorySearchApi.as_view(), name="memory-search"),
    *both("memories/<str:memory_id>/", views.MemoryDetailApi.as_view(), name="memory"),
    *both("memory-archives/", views.MemoryArchiveListApi.as_view(), name="memory-archives"),
    *both(
        "memory-archives/<str:archive_id>/restore/",
        views.MemoryArchiveRestoreApi.as_view(),
        name="memory-archive-restore",
    ),
]
