"""The admin site: Django's, with the monitoring dashboard as its home page for staff who may read monitoring
(trainers without that permission keep the usual list of apps)."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path

from monitoring.admin_dashboard import dashboard_json, dashboard_page, may_see_dashboard


class SpotterAdminSite(admin.AdminSite):
    def index(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> TemplateResponse:
        if may_see_dashboard(request):
            return dashboard_page(request, site=self)
        return super().index(request, extra_context)

    def get_urls(self) -> list[URLResolver | URLPattern]:
        return [
            path("dashboard/data/", self.admin_view(dashboard_json), name="monitoring_dashboard_data"),
            path("apps/", self.admin_view(super().index), name="apps"),
        ] + super().get_urls()
