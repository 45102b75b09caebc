"""Handoffs and support hours in admin. Support hours are edited in the list itself (one row a day and
span, in SUPPORT_TIME_ZONE). Handoffs are read-only here, with their measures at the top: they change only
through the takeover services on the live conversations page."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.utils.html import format_html
from django.utils.text import Truncator

from config.admin import ReadOnlyAdminMixin

from . import hours
from .models import Handoff, SupportHours
from .selectors_handoff import HandoffMeasures, handoff_measures

WINDOWS_DAYS = (7, 30)


def duration_text(value: timedelta | None) -> str:
    """A wait as people say it: "45 s", "12 min", "3 h 05 min", "2 d 4 h"."""
    if value is None:
        return "—"
    seconds = max(int(value.total_seconds()), 0)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 86400:
        return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"
    return f"{seconds // 86400} d {seconds % 86400 // 3600} h"


def share_text(value: float | None) -> str:
    return "—" if value is None else f"{value:.0%}"


@admin.register(SupportHours)
class SupportHoursAdmin(admin.ModelAdmin):
    list_display = ["weekday", "opens", "closes"]
    list_editable = ["opens", "closes"]
    list_display_links = ["weekday"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        now_open = hours.support_open()
        title = f"Support hours ({settings.SUPPORT_TIME_ZONE}): {'open now' if now_open else 'closed now'}"
        subtitle = hours.availability_message() or "With no hours set, a person counts as always available."
        return super().changelist_view(request, {"title": title, "subtitle": subtitle, **(extra_context or {})})


@admin.register(Handoff)
class HandoffAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A visitor opens a handoff; trainers work it on the live conversations page."""

    list_display = ["requested_at", "conversation_link", "reason", "said", "status", "waited", "first_reply",
                    "taken_by", "resolved"]
    list_filter = ["reason", "status", "resolved"]
    list_select_related = ["taken_by"]
    date_hierarchy = "requested_at"
    ordering = ["-requested_at", "-pk"]
    change_list_template = "admin/review/handoff_change_list.html"

    @admin.display(description="conversation", ordering="conversation_id")
    def conversation_link(self, handoff: Handoff) -> str:
        label = str(handoff.conversation_id)[:8]
        try:
            url = reverse("admin:chat_conversation_change", args=[handoff.conversation_id])
        except NoReverseMatch:  # conversations not in this admin
            return label
        return format_html('<a href="{}">{}</a>', url, label)

    @admin.display(description="visitor said")
    def said(self, handoff: Handoff) -> str:
        return format_html('<span title="{}">{}</span>', handoff.detail, Truncator(handoff.detail).chars(80))

    @admin.display(description="waited")
    def waited(self, handoff: Handoff) -> str:
        """Until taken over; still counting while it waits."""
        if handoff.taken_at is not None:
            return duration_text(handoff.taken_at - handoff.requested_at)
        if handoff.status == Handoff.Status.WAITING:
            return format_html("{} <em>(waiting)</em>", duration_text(timezone.now() - handoff.requested_at))
        return "—"  # ended without being taken over

    @admin.display(description="first human reply", ordering="first_reply_at")
    def first_reply(self, handoff: Handoff) -> str:
        if handoff.first_reply_at is None:
            return "—"
        return duration_text(handoff.first_reply_at - handoff.requested_at)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        now = timezone.now()
        windows = [(days, handoff_measures(since=now - timedelta(days=days))) for days in WINDOWS_DAYS]
        context = {"title": "Handoffs to a person", "measure_rows": measure_rows(windows),
                   "window_days": WINDOWS_DAYS}
        return super().changelist_view(request, {**context, **(extra_context or {})})


def measure_rows(windows: list[tuple[int, HandoffMeasures]]) -> list[tuple[str, list[str]]]:
    """The summary table above the list: one row a measure, one column a window."""
    measures = [m for _, m in windows]
    rows = [(f"reason: {label}", [_count_and_rate(m.per_reason[reason], m.rate_of(reason)) for m in measures])
            for reason, label in Handoff.Reason.choices]
    return [
        ("handoffs", [_count_and_rate(m.total, m.rate) for m in measures]),
        *rows,
        ("median time to first human reply", [f"{duration_text(m.median_first_reply)} ({m.replied} replied)"
                                              for m in measures]),
        ("ended handoffs closed as resolved", [f"{share_text(m.resolved_share)} ({m.resolved} of {m.ended})"
                                               for m in measures]),
    ]


def _count_and_rate(count: int, rate: float | None) -> str:
    return f"{count}" if rate is None else f"{count} ({rate:.1%} of conversations)"
