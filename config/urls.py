from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from chat import views as chat_views
from monitoring import views as monitoring_views

urlpatterns = [
    path("", chat_views.demo_page, name="demo"),
    path("widget.js", chat_views.widget_js, name="widget-js"),
    path("admin/", admin.site.urls),
    path("api/v1/", include("chat.urls")),
    path("api/v1/knowledge/", include("knowledge.urls")),
    path("api/v1/review/", include("review.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
    path("kb/", include("knowledge.page_urls")),
    path("healthz", monitoring_views.healthz, name="healthz"),
    path("readyz", monitoring_views.readyz, name="readyz"),
    path("metrics", monitoring_views.metrics, name="metrics"),
]
