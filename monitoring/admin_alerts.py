"""Admin for alerts, alert channels and delivery attempts. Alerts change only through the services in
monitoring/alerts.py: acknowledge and resolve are list actions and buttons on an alert's page."""

from __future__ import annotations

import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.safestring import SafeString

from config.admin import NoAddOrChangeAdminMixin

from .alerts import alert_acknowledge, alert_channel_test, alert_resolve
from .models_alerts import Alert, AlertChannel, AlertDelivery

SEVERITY_COLOURS = {"info": "#417690", "warning": "#b8860b", "critical": "#ba2121"}
CHANGE = "monitoring.change_alert"


def _staff_of(request: HttpRequest) -> User:
    """The signed-in user admin views run for (admin_view lets no anonymous visitor through)."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def _severity_badge(severity: str) -> SafeString:
    return format_html('<strong style="color:{}">{}</strong>', SEVERITY_COLOURS.get(severity, "inherit"), severity)


class AlertDeliveryInline(admin.TabularInline):
    model = AlertDelivery
    readonly_fields = ["at", "channel", "attempt", "ok", "status_code", "duration_ms", "error"]
    fields = list(readonly_fields)
    ordering = ["at"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Alert)
class AlertAdmin(NoAddOrChangeAdminMixin, admin.ModelAdmin):
    """Read-only: an alert's state moves through the buttons and actions."""

    list_display = ["title", "severity_badge", "status", "kind", "count", "first_seen", "last_seen",
                    "acknowledged_by"]
    list_filter = ["severity", "status", "kind"]
    search_fields = ["title", "key"]
    ordering = ["-last_seen"]
    list_select_related = ["acknowledged_by"]
    actions = ["acknowledge", "resolve"]
    inlines = [AlertDeliveryInline]
    change_form_template = "admin/monitoring/alert_change_form.html"
    readonly_fields = ["title", "severity_badge", "status", "kind", "key", "detail", "data_pretty", "count",
                       "first_seen", "last_seen", "delivered_at", "acknowledged_at", "acknowledged_by", "resolved_at",
                       "resolved_by"]
    fields = list(readonly_fields)

    @admin.display(description="severity", ordering="severity")
    def severity_badge(self, alert: Alert) -> SafeString:
        return _severity_badge(alert.severity)

    @admin.display(description="data")
    def data_pretty(self, alert: Alert) -> SafeString:
        return format_html("<pre>{}</pre>", json.dumps(alert.data, indent=2, sort_keys=True, default=str))

    def has_acknowledge_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm(CHANGE)

    @admin.action(description="Acknowledge: someone is on it", permissions=["acknowledge"])
    def acknowledge(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        done = sum(alert_acknowledge(alert=alert, user=_staff_of(request)) for alert in queryset)
        self._report(request, done, len(queryset), "acknowledged", "not open")

    @admin.action(description="Resolve: it is over", permissions=["acknowledge"])
    def resolve(self, request: HttpRequest, queryset: QuerySet[Alert]) -> None:
        done = sum(alert_resolve(alert=alert, user=_staff_of(request)) for alert in queryset)
        self._report(request, done, len(queryset), "resolved", "already resolved")

    def _report(self, request: HttpRequest, done: int, selected: int, verb: str, why_not: str) -> None:
        self.message_user(request, f"{done} alerts {verb}.", messages.SUCCESS)
        if selected > done:
            self.message_user(request, f"{selected - done} left alone: {why_not}.", messages.WARNING)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/acknowledge/", view(self.acknowledge_view), name="monitoring_alert_acknowledge"),
            path("<int:pk>/resolve/", view(self.resolve_view), name="monitoring_alert_resolve"),
            *super().get_urls(),
        ]

    def acknowledge_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._button(request, pk, alert_acknowledge, "acknowledged", "It was not open.")

    def resolve_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        return self._button(request, pk, alert_resolve, "resolved", "It was already resolved.")

    def _button(self, request: HttpRequest, pk: int, service: Any, verb: str, refused: str) -> HttpResponse:
        """The buttons on an alert's page post here; back to the page with what happened."""
        if request.method != "POST":
            return redirect("admin:monitoring_alert_change", pk)
        if not request.user.has_perm(CHANGE):
            raise PermissionDenied
        alert = Alert.objects.filter(pk=pk).first()
        if alert is None:
            raise Http404
        if service(alert=alert, user=_staff_of(request)):
            self.message_user(request, f"Alert {verb}.", messages.SUCCESS)
        else:
            self.message_user(request, refused, messages.WARNING)
        return redirect("admin:monitoring_alert_change", pk)

    def render_change_form(self, request: HttpRequest, context: dict[str, Any], *args: Any,
                           **kwargs: Any) -> HttpResponse:
        alert: Alert | None = context.get("original")
        status = alert.status if alert is not None and request.user.has_perm(CHANGE) else None
        context.update({"can_acknowledge": status == Alert.Status.OPEN,
                        "can_resolve": status in (Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED)})
        return super().render_change_form(request, context, *args, **kwargs)


class AlertChannelForm(forms.ModelForm):
    kinds = forms.MultipleChoiceField(choices=[c for c in Alert.Kind.choices if c[0] != Alert.Kind.TEST],
                                      widget=forms.CheckboxSelectMultiple,
                                      required=False, help_text="only alerts of these kinds; none ticked: every kind")
    url = forms.URLField(label="URL", max_length=500, required=False, assume_scheme="https",
                         help_text="webhook: receives a JSON POST")

    class Meta:
        model = AlertChannel
        fields = ["name", "kind", "enabled", "min_severity", "kinds", "recipients", "url", "secret"]
        widgets = {"secret": forms.PasswordInput(render_value=False), "recipients": forms.Textarea(attrs={"rows": 3})}
        labels = {"min_severity": "Minimum severity"}
        help_texts = {"secret": "signs each POST; never shown again once saved: leave empty to keep the one set"}

    def clean_secret(self) -> str:
        """The secret is not sent back to the browser (a page's source is no place for it), so an empty field
        on a saved channel keeps the stored one."""
        secret: str = self.cleaned_data.get("secret", "")
        if not secret and self.instance.pk:
            return self.instance.secret
        return secret


@admin.register(AlertChannel)
class AlertChannelAdmin(admin.ModelAdmin):
    form = AlertChannelForm
    list_display = ["name", "kind", "target", "enabled", "min_severity", "kinds_shown", "last_delivery"]
    list_filter = ["kind", "enabled"]
    actions = ["send_test_alert"]

    def get_exclude(self, request: HttpRequest, obj: AlertChannel | None = None) -> list[str]:
        if obj is not None and not self.has_change_permission(request, obj):  # read-only: the secret stays hidden
            return ["secret"]
        return []

    @admin.display(description="sends to")
    def target(self, channel: AlertChannel) -> str:
        return ", ".join(channel.recipient_list()) if channel.kind == AlertChannel.Kind.EMAIL else channel.url

    @admin.display(description="kinds")
    def kinds_shown(self, channel: AlertChannel) -> str:
        return ", ".join(channel.kinds) or "every kind"

    @admin.display(description="last attempt")
    def last_delivery(self, channel: AlertChannel) -> SafeString | str:
        last = channel.deliveries.order_by("-at").first()
        if last is None:
            return "–"
        return format_html('<span style="color:{}">{}</span> {}', "inherit" if last.ok else "#ba2121",
                           "ok" if last.ok else (last.error or "failed"), f"{last.at:%Y-%m-%d %H:%M}")

    @admin.action(description="Send a test alert to the selected channels")
    def send_test_alert(self, request: HttpRequest, queryset: QuerySet[AlertChannel]) -> None:
        for channel in queryset:
            alert_channel_test(channel=channel)
        self.message_user(request, format_html(
            'Test alerts queued for {} channels; their delivery attempts show in <a href="{}">the alerts list</a>.',
            len(queryset), reverse("admin:monitoring_alert_changelist") + "?kind__exact=test"), messages.SUCCESS)


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(NoAddOrChangeAdminMixin, admin.ModelAdmin):
    """Every attempt to hand an alert to a channel (written by the delivery tasks only)."""

    list_display = ["at", "alert", "channel", "attempt", "ok", "status_code", "duration_ms", "error"]
    list_filter = ["ok", "channel"]
    list_select_related = ["alert", "channel"]
    ordering = ["-at"]
