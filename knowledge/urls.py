from django.urls import path

from . import api

urlpatterns = [path("search", api.KnowledgeSearchView.as_view(), name="knowledge-search")]
