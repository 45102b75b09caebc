"""Alerts: raised by the beat jobs (and drift and anomaly detection), deduplicated while they last,
acknowledged and resolved in admin, and delivered to the channels configured in admin (Admin → Alert
channels): e-mail through Django's mail backend, and webhooks as a JSON POST signed with HMAC-SHA256
(header X-Spotter-Signature: sha256=<hex>, the same scheme as review's handoff webhook). Delivery runs in
Celery tasks queued after commit (monitoring/tasks.py), never in a request, and each attempt is logged."""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
from django.conf import settings
from django.contrib.auth.models import User
from django.core.cache import cache
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.urls import reverse
from django.utils import timezone
from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client import multiprocess as multiprocess_collector

from .metrics import review_queue_state
from .models import AnswerFact
from .models_alerts import SEVERITY_RANK, Alert, AlertChannel, AlertDelivery
from .webhooks import webhook_headers

log = logging.getLogger(__name__)

EVENT = "alert.raised"
LIVE = [Alert.Status.OPEN, Alert.Status.ACKNOWLEDGED]


class DeliveryFailed(Exception):
    """A channel did not take the alert (receiver down or non-2xx, mail server refused): the task retries."""


# --- raising and ending alerts ---------------------------------------------------------------------------

def alert_raise(
    *, key: str, kind: str, severity: str, title: str, detail: str = "", data: dict | None = None,
) -> Alert:
    """Raise the alert `key`. While one with that key is open or acknowledged it is refreshed (last seen,
    count, title, detail, data; severity only rises) and not delivered again; otherwise a new alert is
    created and, once the transaction commits, delivered to every enabled channel that wants it."""
    kind, severity = Alert.Kind(kind), Alert.Severity(severity)  # ValueError on anything else
    fields = {"kind": kind, "severity": severity, "title": title[:300], "detail": detail, "data": data or {}}
    with transaction.atomic():
        return _live_alert_refresh(key=key, fields=fields) or _alert_create(key=key, fields=fields)


def _alert_create(*, key: str, fields: dict[str, Any]) -> Alert:
    now = timezone.now()
    try:
        with transaction.atomic():  # a savepoint: a concurrent raise may have created the one live row
            alert = Alert.objects.create(key=key, first_seen=now, last_seen=now, **fields)
    except IntegrityError:
        winner = _live_alert_refresh(key=key, fields=fields)
        if winner is None:  # resolved in the instant between: the raising job's next run creates it
            raise
        return winner
    transaction.on_commit(lambda: _queue("alert_deliver", alert.pk))
    return alert


def _live_alert_refresh(*, key: str, fields: dict[str, Any]) -> Alert | None:
    alert = Alert.objects.select_for_update().filter(key=key, status__in=LIVE).first()
    if alert is None:
        return None
    if SEVERITY_RANK[fields["severity"]] < SEVERITY_RANK[Alert.Severity(alert.severity)]:
        fields = {**fields, "severity": alert.severity}
    for name, value in fields.items():
        setattr(alert, name, value)
    alert.count += 1
    alert.last_seen = timezone.now()
    alert.save(update_fields=[*fields, "count", "last_seen"])
    return alert


def alert_acknowledge(*, alert: Alert, user: User) -> bool:
    """Someone is on it: an open alert becomes acknowledged (still live, so raising it again only counts).
    False when it was not open (already acknowledged or resolved)."""
    changed = Alert.objects.filter(pk=alert.pk, status=Alert.Status.OPEN).update(
        status=Alert.Status.ACKNOWLEDGED, acknowledged_at=timezone.now(), acknowledged_by=user)
    alert.refresh_from_db()
    return bool(changed)


def alert_resolve(*, alert: Alert, user: User | None = None) -> bool:
    """End an open or acknowledged alert (by a person, or with no user when its condition went away); the
    next raise of its key is a new alert, delivered again. False when it was already resolved."""
    changed = Alert.objects.filter(pk=alert.pk, status__in=LIVE).update(
        status=Alert.Status.RESOLVED, resolved_at=timezone.now(), resolved_by=user)
    alert.refresh_from_db()
    return bool(changed)


def alert_clear(*, key: str) -> int:
    """The condition behind `key` went away: resolve its live alert, if any. Returns how many were resolved."""
    return Alert.objects.filter(key=key, status__in=LIVE).update(
        status=Alert.Status.RESOLVED, resolved_at=timezone.now(), resolved_by=None)


def alert_channel_test(*, channel: AlertChannel) -> Alert:
    """A test alert for one channel (whatever its severity and kind filters), from admin: it shows up in the
    alerts list, already resolved, with its delivery attempts."""
    now = timezone.now()
    alert = Alert.objects.create(
        key=f"test:{channel.pk}:{now.timestamp()}", kind=Alert.Kind.TEST, severity=Alert.Severity.INFO,
        status=Alert.Status.RESOLVED, title=f"Test alert for {channel.name}", first_seen=now, last_seen=now,
        resolved_at=now, delivered_at=now,
        detail="Sent from admin to check that this channel receives Spotter's alerts.")
    transaction.on_commit(lambda: _queue("alert_channel_deliver", alert.pk, channel.pk))
    return alert


def _queue(task_name: str, *args: int) -> None:
    from . import tasks  # tasks import this module

    try:
        getattr(tasks, task_name).delay(*args)
    except Exception:  # no broker now: the alerts job queues undelivered alerts again
        log.warning("could not queue %s%s", task_name, args, exc_info=True)


# --- delivery --------------------------------------------------------------------------------------------

def alert_channels_pick(*, alert_id: int) -> list[int]:
    """The channels a new alert goes to, once: a task delivered twice picks none the second time."""
    alert = Alert.objects.filter(pk=alert_id).first()
    claimed = Alert.objects.filter(pk=alert_id, delivered_at__isnull=True).update(delivered_at=timezone.now())
    if alert is None or not claimed:
        return []
    return [channel.pk for channel in AlertChannel.objects.filter(enabled=True).order_by("pk")
            if channel.accepts(alert)]


def alerts_undelivered(*, now: datetime) -> list[int]:
    """Live alerts never handed to the channels (the broker was down when they were raised): the alerts job
    queues them again. A minute's grace lets the usual after-commit delivery go first."""
    return list(Alert.objects.filter(status__in=LIVE, delivered_at__isnull=True,
                                     first_seen__lt=now - timedelta(minutes=1)).values_list("pk", flat=True))


def alert_delivery_attempt(*, alert_id: int, channel_id: int, attempt: int) -> AlertDelivery | None:
    """Hand the alert to the channel once and log the attempt; raises DeliveryFailed (after logging) so that
    the task retries. None when the alert or channel was deleted meanwhile."""
    alert = Alert.objects.filter(pk=alert_id).first()
    channel = AlertChannel.objects.filter(pk=channel_id).first()
    if alert is None or channel is None:
        return None
    started = time.monotonic()
    outcome = _send(alert=alert, channel=channel)
    delivery = AlertDelivery.objects.create(
        alert=alert, channel=channel, attempt=attempt, at=timezone.now(), ok=outcome.ok,
        status_code=outcome.status_code, error=outcome.error[:2000],
        duration_ms=round(1000 * (time.monotonic() - started)))
    if not outcome.ok:
        log.warning("alert %s to channel %s failed (attempt %s): %s", alert_id, channel_id, attempt, outcome.error)
        raise DeliveryFailed(f"{channel}: {outcome.error}")
    return delivery


@dataclass(frozen=True)
class _Outcome:
    ok: bool
    status_code: int | None = None
    error: str = ""


def _send(*, alert: Alert, channel: AlertChannel) -> _Outcome:
    if channel.kind == AlertChannel.Kind.WEBHOOK:
        return _post(url=channel.url, body=alert_webhook_body(alert=alert), secret=channel.secret)
    try:
        send_mail(subject=alert_email_subject(alert=alert), message=alert_email_body(alert=alert),
                  from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=channel.recipient_list())
    except Exception as exc:  # SMTP errors, refused connections: whatever the backend raises, retried
        return _Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
    return _Outcome(ok=True)


def _post(*, url: str, body: bytes, secret: str) -> _Outcome:
    headers = webhook_headers(body=body, event=EVENT, secret=secret)
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=settings.ALERT_WEBHOOK_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        return _Outcome(ok=False, error=f"{type(exc).__name__}: {exc}")
    if not response.is_success:
        return _Outcome(ok=False, status_code=response.status_code, error=f"answered {response.status_code}")
    return _Outcome(ok=True, status_code=response.status_code)


def alert_payload(*, alert: Alert) -> dict[str, Any]:
    return {"event": EVENT, "alert_id": alert.pk, "key": alert.key, "kind": alert.kind, "severity": alert.severity,
            "status": alert.status, "title": alert.title, "detail": alert.detail, "data": alert.data,
            "count": alert.count, "first_seen": alert.first_seen.isoformat(),
            "last_seen": alert.last_seen.isoformat(), "url": alert_admin_url(alert=alert)}


def alert_webhook_body(*, alert: Alert) -> bytes:
    return json.dumps(alert_payload(alert=alert), separators=(",", ":"), default=str).encode()


def alert_admin_url(*, alert: Alert) -> str:
    return settings.PUBLIC_URL.rstrip("/") + reverse("admin:monitoring_alert_change", args=[alert.pk])


def alert_email_subject(*, alert: Alert) -> str:
    return f"[Spotter {alert.severity}] {alert.title}"


def alert_email_body(*, alert: Alert) -> str:
    return (f"{alert.title}\n\n{alert.detail or '(no detail)'}\n\n"
            f"Kind: {alert.get_kind_display()}\nSeverity: {alert.severity}\n"
            f"First seen: {alert.first_seen:%Y-%m-%d %H:%M %Z}\n\n"
            f"Acknowledge or resolve it in admin:\n{alert_admin_url(alert=alert)}\n")


# --- conditions the beat job watches ---------------------------------------------------------------------

BREAKER_KEY = "breaker_open"
QUEUE_KEY = "review_queue_wait"
COST_KEY = "cost_budget"
_BREAKER_SINCE = "monitoring:alerts:breaker-open-since"


def alert_conditions_check(*, now: datetime | None = None) -> dict[str, bool]:
    """One pass of the beat job: which of its conditions hold now (each raised or cleared)."""
    now = now or timezone.now()
    return {BREAKER_KEY: breaker_condition_check(now=now), QUEUE_KEY: review_queue_condition_check(),
            COST_KEY: cost_budget_condition_check(now=now)}


def breaker_open_anywhere() -> bool:
    """Whether an LLM circuit breaker is open in any live process. Breakers live in each process's memory;
    what crosses processes is the BREAKER_OPEN gauge, which every process writes to the shared
    PROMETHEUS_MULTIPROC_DIR (one machine). Without that directory only this process's own gauge is known."""
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return bool(REGISTRY.get_sample_value("spotter_llm_breaker_open"))
    _forget_dead_processes(Path(directory))
    registry = CollectorRegistry()
    multiprocess_collector.MultiProcessCollector(registry)
    return bool(registry.get_sample_value("spotter_llm_breaker_open"))


def _forget_dead_processes(directory: Path) -> None:
    """A worker that died with its breaker open would otherwise count as open until the next restart:
    nothing else marks the files of dead processes (prometheus_client's mark_process_dead is for that)."""
    for path in directory.glob("gauge_live*_*.db"):
        pid = int(path.stem.rsplit("_", 1)[1])
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            multiprocess_collector.mark_process_dead(pid, str(directory))
        except PermissionError:  # alive, under another user
            pass


def breaker_condition_check(*, now: datetime) -> bool:
    """Alert when a breaker has stayed open ALERT_BREAKER_OPEN_SECONDS (a short opening is the breaker doing
    its job). When it first looked open is kept in the shared cache, so worker restarts do not reset it."""
    if not breaker_open_anywhere():
        cache.delete(_BREAKER_SINCE)
        alert_clear(key=BREAKER_KEY)
        return False
    cache.add(_BREAKER_SINCE, now.timestamp(), timeout=None)
    open_for = now.timestamp() - float(cache.get(_BREAKER_SINCE, now.timestamp()))
    if open_for < settings.ALERT_BREAKER_OPEN_SECONDS:
        return False
    alert_raise(key=BREAKER_KEY, kind=Alert.Kind.BREAKER_OPEN, severity=Alert.Severity.CRITICAL,
                title="The LLM circuit breaker stays open",
                detail=f"Open for {open_for / 60:.0f} minutes: answers fail or fall back while the LLM is unreachable.",
                data={"open_seconds": round(open_for)})
    return True


def review_queue_condition_check() -> bool:
    """Alert when the oldest waiting review item has waited longer than ALERT_REVIEW_QUEUE_WAIT_MINUTES."""
    depth, oldest_seconds = review_queue_state()
    limit = settings.ALERT_REVIEW_QUEUE_WAIT_MINUTES
    if not limit or oldest_seconds < 60 * limit:
        alert_clear(key=QUEUE_KEY)
        return False
    alert_raise(key=QUEUE_KEY, kind=Alert.Kind.REVIEW_QUEUE_WAIT, severity=Alert.Severity.WARNING,
                title="Review items wait too long",
                detail=f"{depth} items in the queue; the oldest has waited {oldest_seconds / 60:.0f} minutes "
                       f"(limit {limit}).",
                data={"depth": depth, "oldest_seconds": round(oldest_seconds), "limit_minutes": limit})
    return True


def cost_today(*, now: datetime) -> Decimal:
    """What today's answers cost so far (the day in TIME_ZONE). Raw facts are kept far longer than a day."""
    start = timezone.localtime(now).replace(hour=0, minute=0, second=0, microsecond=0)
    total = AnswerFact.objects.filter(created_at__gte=start, created_at__lt=start + timedelta(days=1)).aggregate(
        total=Sum("cost"))["total"]
    return total or Decimal(0)


def cost_budget_condition_check(*, now: datetime) -> bool:
    """Alert when today's cost is over ALERT_DAILY_COST_BUDGET_USD (0: no budget). It clears itself when the
    day turns."""
    budget = Decimal(str(settings.ALERT_DAILY_COST_BUDGET_USD))
    spent = cost_today(now=now)
    if not budget or spent <= budget:
        alert_clear(key=COST_KEY)
        return False
    alert_raise(key=COST_KEY, kind=Alert.Kind.COST_BUDGET, severity=Alert.Severity.WARNING,
                title="Today's LLM cost is over the daily budget",
                detail=f"${spent:.2f} spent today against a budget of ${budget:.2f}.",
                data={"spent_usd": str(spent), "budget_usd": str(budget)})
    return True
