"""Admin for drift checks and new-topic clusters, and the drift report staff work from: per kind the latest
statistic against its threshold with its history, and the new-topic clusters with one-click decisions."""

from __future__ import annotations

from collections.abc import Callable

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.views.decorators.http import require_POST

from config.admin import NoAddOrChangeAdminMixin

from .models_drift import DriftCheck, TopicCluster
from .selectors_drift import drift_report
from .topics import topic_cluster_dismiss, topic_cluster_mark_gap, topic_cluster_send_to_review

CHANGE_TOPIC = "monitoring.change_topiccluster"


def _staff_of(request: HttpRequest) -> User:
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def _decide(action: str, cluster: TopicCluster, user: User) -> tuple[bool, str]:
    """Apply one decision; (done, what to tell the user)."""
    if action == "review":
        queued = topic_cluster_send_to_review(cluster=cluster, user=user)
        if queued is None:
            return False, "already sent to the review queue or dismissed"
        return True, f"sent to the review queue ({queued} answers queued)"
    decisions: dict[str, tuple[Callable[..., bool], str]] = {
        "gap": (topic_cluster_mark_gap, "marked as a knowledge-base gap"),
        "dismiss": (topic_cluster_dismiss, "dismissed"),
    }
    service, said = decisions[action]
    return (True, said) if service(cluster=cluster, user=user) else (False, "left alone: already decided otherwise")


@admin.register(DriftCheck)
class DriftCheckAdmin(NoAddOrChangeAdminMixin, admin.ModelAdmin):
    """Written by the beat job only; the report page (`drift report` link) is where staff work from."""

    list_display = ["window_start", "kind", "value_shown", "statistic_shown", "evidence_shown", "alarm_badge",
                    "window_count", "reference_count"]
    list_filter = ["kind", "alarm"]
    change_list_template = "admin/monitoring/driftcheck/change_list.html"
    date_hierarchy = "window_start"
    readonly_fields = [f.name for f in DriftCheck._meta.fields]

    @admin.display(description="window / reference")
    def value_shown(self, check: DriftCheck) -> str:
        return f"{check.value:.3g} / {check.reference_value:.3g}"

    @admin.display(description="statistic (z)", ordering="statistic")
    def statistic_shown(self, check: DriftCheck) -> str:
        return f"{check.statistic:+.2f}"

    @admin.display(description="evidence / threshold", ordering="evidence")
    def evidence_shown(self, check: DriftCheck) -> str:
        return f"{check.evidence:.2f} / {check.threshold:.2f}"

    @admin.display(description="alarm", ordering="alarm")
    def alarm_badge(self, check: DriftCheck) -> SafeString:
        return _alarm_badge(check.alarm)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("report/", view(self.report), name="monitoring_drift_report"),
            path("report/topic/<int:pk>/<str:action>/", view(require_POST(self.topic_decide)),
                 name="monitoring_topic_decide"),
        ] + super().get_urls()

    def report(self, request: HttpRequest) -> TemplateResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        report = drift_report()
        for kind in report["kinds"]:
            kind["chart"] = evidence_chart(kind["history"])
        context = {
            **self.admin_site.each_context(request), "title": "Drift report", "opts": self.model._meta,
            **report, "can_decide": request.user.has_perm(CHANGE_TOPIC),
        }
        return TemplateResponse(request, "admin/monitoring/drift_report.html", context)

    def topic_decide(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        if action not in ("review", "gap", "dismiss") or not request.user.has_perm(CHANGE_TOPIC):
            raise PermissionDenied
        cluster = get_object_or_404(TopicCluster, pk=pk)
        done, said = _decide(action, cluster, _staff_of(request))
        self.message_user(request, f"Topic “{cluster}”: {said}.", messages.SUCCESS if done else messages.WARNING)
        return redirect("admin:monitoring_drift_report")


def evidence_chart(checks: list[DriftCheck], *, width: int = 360, height: int = 60) -> SafeString:
    """The accumulated evidence of consecutive checks as a small line chart, the threshold dashed."""
    if not checks:
        return format_html("{}", "no checks yet")
    top = max(max(c.evidence for c in checks), checks[-1].threshold) * 1.1 or 1.0
    step = width / max(len(checks) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - c.evidence / top * height:.1f}" for i, c in enumerate(checks))
    line = height - checks[-1].threshold / top * height
    return format_html(
        '<svg width="{}" height="{}" role="img" aria-label="evidence against threshold">'
        '<line x1="0" x2="{}" y1="{}" y2="{}" stroke="#ba2121" stroke-dasharray="4 3"/>'
        '<polyline points="{}" fill="none" stroke="#417690" stroke-width="2"/></svg>',
        width, height, width, f"{line:.1f}", f"{line:.1f}", points)


def _alarm_badge(alarm: bool) -> SafeString:
    colour, text = ("#ba2121", "alarm") if alarm else ("#417690", "ok")
    return format_html('<strong style="color:{}">{}</strong>', colour, text)


@admin.register(TopicCluster)
class TopicClusterAdmin(admin.ModelAdmin):
    list_display = ["example", "size", "trend_shown", "status", "first_seen", "last_seen"]
    list_filter = ["status"]
    actions = ["send_to_review", "mark_gap", "dismiss"]
    readonly_fields = ["status", "size", "trend_shown", "examples_shown", "first_seen", "last_seen",
                       "status_changed_by", "status_changed_at"]
    fields = list(readonly_fields)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(description="example question")
    def example(self, cluster: TopicCluster) -> str:
        return cluster.examples[0] if cluster.examples else "—"

    @admin.display(description="trend (size per check)")
    def trend_shown(self, cluster: TopicCluster) -> str:
        return " → ".join(str(point["size"]) for point in cluster.trend[-12:])

    @admin.display(description="examples")
    def examples_shown(self, cluster: TopicCluster) -> SafeString:
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}</li>", ((e,) for e in cluster.examples)))

    def _decide_all(self, request: HttpRequest, queryset: QuerySet[TopicCluster], action: str) -> None:
        user = _staff_of(request)
        done = sum(_decide(action, cluster, user)[0] for cluster in queryset)
        self.message_user(request, f"{done} of {queryset.count()} clusters changed; the others were already decided.")

    @admin.action(description="Send to the review queue", permissions=["change"])
    def send_to_review(self, request: HttpRequest, queryset: QuerySet[TopicCluster]) -> None:
        self._decide_all(request, queryset, "review")

    @admin.action(description="Mark as knowledge-base gap", permissions=["change"])
    def mark_gap(self, request: HttpRequest, queryset: QuerySet[TopicCluster]) -> None:
        self._decide_all(request, queryset, "gap")

    @admin.action(description="Dismiss", permissions=["change"])
    def dismiss(self, request: HttpRequest, queryset: QuerySet[TopicCluster]) -> None:
        self._decide_all(request, queryset, "dismiss")
