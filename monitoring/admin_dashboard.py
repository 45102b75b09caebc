"""The monitoring dashboard: the admin's home page for staff who may read monitoring (config/admin.py puts it
there), and the JSON it polls to move without a reload."""

from __future__ import annotations

from django.contrib.admin import AdminSite
from django.http import HttpRequest, JsonResponse
from django.template.response import TemplateResponse

from .dashboard import FILTERS, RANGES, dashboard_data
from .metrics import review_queue_state
from .models import Alert

PERMISSION = "monitoring.view_answerrollup"
POLL_SECONDS = 5


def may_see_dashboard(request: HttpRequest) -> bool:
    return bool(request.user.is_active and request.user.is_staff and request.user.has_perm(PERMISSION))


def dashboard_page(request: HttpRequest, *, site: AdminSite) -> TemplateResponse:
    range_name = _range(request) or "hour"
    payload = dashboard_data(range_name=range_name, filters=_page_filters(request))
    context = {
        **site.each_context(request), "title": "Monitoring", "payload": {**payload, **_now()},
        "ranges": [("hour", "Last hour"), ("day", "24 hours"), ("week", "7 days"), ("30days", "30 days")],
        "range_name": range_name, "poll_seconds": POLL_SECONDS,
    }
    return TemplateResponse(request, "admin/monitoring/dashboard.html", context)


def dashboard_json(request: HttpRequest) -> JsonResponse:
    if not may_see_dashboard(request):
        return JsonResponse({"code": "forbidden", "message": "You may not read monitoring."}, status=403)
    range_name = _range(request)
    if range_name is None:
        return JsonResponse({"code": "bad_range", "message": f"range is one of {', '.join(RANGES)}"}, status=400)
    filters = _filters(request)
    if not filters.get("prompt_version_id", "0").isdigit():
        return JsonResponse({"code": "bad_filter", "message": "prompt_version_id is a number"}, status=400)
    return JsonResponse({**dashboard_data(range_name=range_name, filters=filters), **_now()})


def _range(request: HttpRequest) -> str | None:
    name = request.GET.get("range", "hour")
    return name if name in RANGES else None


def _filters(request: HttpRequest) -> dict[str, str]:
    return {name: request.GET[name] for name in FILTERS if request.GET.get(name)}


def _page_filters(request: HttpRequest) -> dict[str, str]:
    """The page's first draw ignores a filter it cannot apply (its JSON says why)."""
    filters = _filters(request)
    if not filters.get("prompt_version_id", "0").isdigit():
        filters.pop("prompt_version_id")
    return filters


def _now() -> dict[str, dict[str, float]]:
    """Levels read as they are now: the review queue, and the alerts still waiting for someone."""
    depth, oldest = review_queue_state()
    waiting = Alert.objects.filter(status=Alert.Status.OPEN)
    return {"queue": {"depth": depth, "oldest_minutes": round(oldest / 60, 1)},
            "alerts": {"open": waiting.count(), "critical": waiting.filter(severity=Alert.Severity.CRITICAL).count()}}
