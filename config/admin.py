"""The admin site: Django's, with the monitoring dashboard as its home page for staff who may read monitoring
(trainers without that permission keep the usual list of apps); and the bases the apps' model admins share."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, URLResolver, path, reverse

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


class NoAddOrChangeAdminMixin:
    """Rows only the application writes: staff read them, and the change page shows every field read-only
    (Django does that when the change permission is refused). Deleting stays with the delete permission."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ReadOnlyAdminMixin(NoAddOrChangeAdminMixin):
    """A record kept as it was written: nobody, superusers included, adds, edits or deletes one in admin,
    so there is no delete action either."""

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class SingletonAdmin(admin.ModelAdmin):
    """A settings model with one row: the list is that row's page (made on the first visit), and the row is
    never added or deleted here, only changed."""

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        row = self.model.objects.first() or self.model.objects.create()
        opts = self.model._meta
        return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[row.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
