"""Admin → Erasure records, and the "Visitor data" page: staff export (JSON download) or erase (after a
confirmation page) one visitor's data. Each needs its permission (chat.export_visitor_data,
chat.erase_visitor_data); the records list is append-only."""

from __future__ import annotations

import json
import logging
from typing import Any, cast

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.core.serializers.json import DjangoJSONEncoder
from django.db.models import Count
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html

from config.admin import ReadOnlyAdminMixin

from . import privacy
from .models import Conversation, ErasureRecord, VisitorProfile

logger = logging.getLogger(__name__)
EXPORT = "chat.export_visitor_data"
ERASE = "chat.erase_visitor_data"


@admin.register(ErasureRecord)
class ErasureRecordAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["at", "requested_by", "staff_user", "visitor", "deleted"]
    list_filter = ["requested_by"]
    list_select_related = ["staff_user"]
    readonly_fields = ["at", "requested_by", "staff_user", "visitor_hash", "counts"]
    change_list_template = "admin/chat/privacy_erasure_list.html"

    @admin.display(description="visitor (hash)")
    def visitor(self, record: ErasureRecord) -> str:
        return record.visitor_hash[:12] or "-"

    @admin.display(description="rows deleted")
    def deleted(self, record: ErasureRecord) -> str:
        return ", ".join(f"{kind}: {n}" for kind, n in record.counts.items())

    def has_view_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return super().has_view_permission(request, obj) or _may_handle(request)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return super().has_module_permission(request) or _may_handle(request)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("visitor-data/", view(self.visitor_data_view), name="chat_visitor_data"),
            path("visitor-data/export/", view(self.export_view), name="chat_visitor_data_export"),
            path("visitor-data/erase/", view(self.erase_view), name="chat_visitor_data_erase"),
            *super().get_urls(),
        ]

    def visitor_data_view(self, request: HttpRequest) -> HttpResponse:
        """Enter a visitor id (or arrive with ?visitor_id= from a conversation): what is stored, and the actions."""
        if not _may_handle(request):
            raise PermissionDenied
        visitor_id = request.GET.get("visitor_id", "").strip()
        return TemplateResponse(request, "admin/chat/privacy_visitor.html", {
            **self._context(request, "Visitor data"), "visitor_id": visitor_id,
            "stored": _stored_summary(visitor_id) if visitor_id else None,
            "erased_before": ErasureRecord.objects.filter(visitor_hash=privacy.visitor_hash(visitor_id)).first()
            if visitor_id else None,
            "may_export": request.user.has_perm(EXPORT), "may_erase": request.user.has_perm(ERASE),
        })

    def export_view(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm(EXPORT):
            raise PermissionDenied
        visitor_id = _required_visitor(request)
        logger.info("staff user %s exported the data of visitor %s", request.user.pk,
                    privacy.visitor_hash(visitor_id)[:12])
        body = json.dumps(privacy.visitor_export(visitor_id=visitor_id), cls=DjangoJSONEncoder, indent=2)
        response = HttpResponse(body, content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="visitor-{privacy.visitor_hash(visitor_id)[:12]}.json"'
        return response

    def erase_view(self, request: HttpRequest) -> HttpResponse:
        """GET: the confirmation page; POST: the erasure, then the record it left."""
        if not request.user.has_perm(ERASE):
            raise PermissionDenied
        visitor_id = _required_visitor(request)
        if request.method != "POST":
            return TemplateResponse(request, "admin/chat/privacy_erase_confirm.html", {
                **self._context(request, "Erase a visitor's data"), "visitor_id": visitor_id,
                "stored": _stored_summary(visitor_id)})
        record = privacy.visitor_erase(visitor_id=visitor_id, requested_by=ErasureRecord.Requester.STAFF,
                                       staff_user=cast(User, request.user))  # admin_view: a staff user
        self.message_user(request, format_html("The visitor's data was erased ({}).", self.deleted(record)),
                          messages.SUCCESS)
        return redirect(reverse("admin:chat_erasurerecord_change", args=[record.pk]))

    def _context(self, request: HttpRequest, title: str) -> dict[str, Any]:
        return {**self.admin_site.each_context(request), "opts": self.model._meta, "title": title}


def _may_handle(request: HttpRequest) -> bool:
    return request.user.has_perm(EXPORT) or request.user.has_perm(ERASE)


def _required_visitor(request: HttpRequest) -> str:
    visitor_id = (request.POST.get("visitor_id") or request.GET.get("visitor_id") or "").strip()
    if not visitor_id:
        raise PermissionDenied("No visitor id.")
    return visitor_id


def _stored_summary(visitor_id: str) -> dict[str, Any]:
    """What the visitor-data page shows before an action: counts only, no content."""
    conversations = Conversation.objects.filter(visitor_id=visitor_id).aggregate(
        conversations=Count("pk", distinct=True), messages=Count("messages"))
    return {**conversations, "profile": VisitorProfile.objects.filter(visitor_id=visitor_id).exists()}
