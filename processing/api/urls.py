"""``/api/v1/`` routes for collections, memories and search."""

from django.urls import path

from processing.api import views

urlpatterns = [
    path("collections/", views.CollectionListCreateApi.as_view(), name="collections"),
    path(
        "collections/<str:collection_id>/",
        views.CollectionDetailApi.as_view(),
        name="collection",
    ),
    path("memories/", views.MemoryListApi.as_view(), name="memories"),
    path("memories/search", views.MemorySearchApi.as_view(), name="memory-search"),
    path("memories/search/", views.MemorySearchApi.as_view()),
    path("memories/<str:memory_id>/", views.MemoryDetailApi.as_view(), name="memory"),
]
