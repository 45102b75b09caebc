from django.contrib import admin
from django.http import HttpRequest
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from .models import AnswerFact
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
