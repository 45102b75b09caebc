from django.urls import path
from rest_framework.routers import SimpleRouter

from . import api

router = SimpleRouter(trailing_slash=True)
router.register("sources", api.SourceViewSet, basename="knowledge-source")

urlpatterns = [path("search", api.KnowledgeSearchView.as_view(), name="knowledge-search"), *router.urls]
