import hmac

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.http import require_GET
from prometheus_client import CONTENT_TYPE_LATEST

from .health import run_checks
from .metrics import exposition


@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """Liveness: the process answers. Dependencies are /readyz's business."""
    return JsonResponse({"status": "ok"})


@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = run_checks()
    ready = all(c["ok"] for c in checks.values())
    return JsonResponse({"status": "ready" if ready else "not ready", "checks": checks}, status=200 if ready else 503)


@require_GET
def metrics(request: HttpRequest) -> HttpResponse:
    """Prometheus text format, for a scraper with METRICS_TOKEN (`Authorization: Bearer …`) or from an
    address in METRICS_ALLOWED_IPS; nobody else (the numbers tell how the deployment is doing)."""
    if not _may_scrape(request):
        return JsonResponse({"code": "not_authorized", "message": "Send the metrics token as a bearer token."},
                            status=401, headers={"WWW-Authenticate": "Bearer"})
    return HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)


def _may_scrape(request: HttpRequest) -> bool:
    token = settings.METRICS_TOKEN
    sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    if token and sent and hmac.compare_digest(sent, token):
        return True
    return request.META.get("REMOTE_ADDR", "") in settings.METRICS_ALLOWED_IPS
