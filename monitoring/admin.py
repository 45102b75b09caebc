
from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from config.admin import NoAddOrChangeAdminMixin

from . import admin_alerts, admin_drift, admin_schedules  # noqa: F401  (registers their model admins)
from .models import AnswerFact, ConfidenceModel
from .selectors import cost_by_day_and_model, cost_totals


@admin.register(AnswerFact)
class AnswerFactAdmin(admin.ModelAdmin):
    list_display = [
        "message_id", "created_at", "status", "model", "reuse", "confidence", "latency_ms", "ttft_ms", "cost",
        "cost_avoided",
    ]
    list_filter = ["status", "model", "reuse", "offline"]
    readonly_fields = [f.name for f in AnswerFact._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def get_urls(self) -> list[URLPattern]:
        return [path("costs/", self.admin_site.admin_view(self.costs), name="monitoring_costs")] + super().get_urls()

    def costs(self, request: HttpRequest) -> TemplateResponse:
        """Cost per day and model, and what reuse saved."""
        try:
            days = min(max(int(request.GET.get("days", 30)), 1), 365)
        except ValueError:
            days = 30
        totals = cost_totals(days=days)
        context = {
            **self.admin_site.each_context(request), "title": "Cost and savings", "opts": self.model._meta,
            "days": days, "rows": cost_by_day_and_model(days=days), "totals": totals,
            "reuse_percent": 100 * totals["reuse_rate"],
        }
        return TemplateResponse(request, "admin/monitoring/answerfact/costs.html", context)


@admin.register(ConfidenceModel)
class ConfidenceModelAdmin(NoAddOrChangeAdminMixin, admin.ModelAdmin):
    """Trained by the beat job only; here to judge how well its probabilities match outcomes."""

    list_display = ["trained_at", "labels", "positives", "brier", "ece"]
    readonly_fields = ["trained_at", "labels", "positives", "brier", "ece", "reliability_table", "feature_weights"]
    fields = list(readonly_fields)

    @admin.display(description="reliability (out-of-fold)")
    def reliability_table(self, obj: ConfidenceModel) -> SafeString:
        rows = format_html_join("", "<tr><td>{}–{}</td><td>{}</td><td>{}</td><td>{}</td></tr>", (
            (b["low"], b["high"], _share(b["predicted"]), _share(b["observed"]), b["count"]) for b in obj.reliability
        ))
        return format_html("<table><thead><tr><th>bin</th><th>predicted</th><th>observed</th><th>answers</th>"
                           "</tr></thead><tbody>{}</tbody></table>", rows)

    @admin.display(description="weights (standardised features)")
    def feature_weights(self, obj: ConfidenceModel) -> SafeString:
        rows = format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", (
            (name, f"{weight:+.3f}") for name, weight in zip(obj.feature_names, obj.coefficients, strict=False)
        ))
        return format_html("<table><tbody>{}<tr><td>intercept</td><td>{}</td></tr></tbody></table>", rows,
                           f"{obj.intercept:+.3f}")


def _share(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}"
