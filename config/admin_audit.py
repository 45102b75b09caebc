"""Admin → Audit log: who changed what, with the values before and after. Read-only for everyone,
superusers too: no add, change or delete page, no delete action (the table refuses them as well)."""

from __future__ import annotations

from auditlog.admin import LogEntryAdmin
from auditlog.models import LogEntry
from django.contrib import admin
from django.utils.html import format_html

from .admin import ReadOnlyAdminMixin


class AuditLogEntryAdmin(ReadOnlyAdminMixin, LogEntryAdmin):
    list_display = ["created", "resource_url", "action", "msg_short", "user_url", "remote_addr"]
    list_filter = [
        "action", ("content_type", admin.RelatedOnlyFieldListFilter), ("actor", admin.RelatedOnlyFieldListFilter),
        "timestamp",
    ]
    search_fields = ["object_repr", "changes", "actor__username", "actor_email", "cid"]
    fieldsets = [
        (None, {"fields": ["created", "user_url", "resource_url", "remote_addr", "cid"]}),
        ("Changes (before → after)", {"fields": ["action", "msg"]}),
    ]
    readonly_fields = ["created", "user_url", "resource_url", "remote_addr", "cid", "action", "msg"]

    @admin.display(description="who")
    def user_url(self, obj: LogEntry) -> str:
        """The actor; once their account is deleted, the e-mail or name the entry kept; "system" for jobs."""
        if obj.actor_id:
            return str(super().user_url(obj))
        gone = obj.actor_email or (obj.additional_data or {}).get("deleted_actor")
        return format_html("{} (account deleted)", gone) if gone else "system"


def register() -> None:
    """In place of auditlog's own admin (which lets a cascade delete entries)."""
    if admin.site.is_registered(LogEntry):
        admin.site.unregister(LogEntry)
    admin.site.register(LogEntry, AuditLogEntryAdmin)
