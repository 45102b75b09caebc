"""Alerts reach the channels staff configured in admin: a signed webhook POST to a real local receiver (which
refuses the first delivery, so the Celery task's retry is exercised) and e-mail through Django's test outbox.
An alert that lasts is one alert, counted, and delivered once; staff acknowledge and resolve it in admin."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager
from datetime import timedelta
from decimal import Decimal
from typing import Any

import pytest
from django.core import mail
from django.core.cache import cache
from django.test import TestCase
from django.urls import reverse
from django.utils import timezone

from monitoring import alerts, metrics
from monitoring.models import AnswerFact
from monitoring.models_alerts import Alert, AlertChannel, AlertDelivery
from review.models import ReviewItem
from tests.factories import ReviewItemFactory
from tests.webhooks import SECRET, Receiver

pytestmark = pytest.mark.django_db



@pytest.fixture
def eager(settings) -> Any:
    """The tasks run in-process, as the worker would."""
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.CELERY_TASK_ALWAYS_EAGER = True
    settings.PUBLIC_URL = "https://spotter.example.com/"
    return settings


def committed() -> AbstractContextManager[Any]:
    """What the block queues for after its commit runs as the block ends, as a real commit would run it
    (the test's own transaction never commits)."""
    return TestCase.captureOnCommitCallbacks(execute=True)


def webhook(receiver: Receiver, **fields: Any) -> AlertChannel:
    return AlertChannel.objects.create(**{"name": "ops hook", "kind": AlertChannel.Kind.WEBHOOK, "url": receiver.url,
                                          "secret": SECRET, **fields})


def mailbox(**fields: Any) -> AlertChannel:
    return AlertChannel.objects.create(**{"name": "on-call", "kind": AlertChannel.Kind.EMAIL,
                                          "recipients": "oncall@example.com,\nlead@example.com", **fields})


def raise_alert(**fields: Any) -> Alert:
    with committed():
        return alerts.alert_raise(**fields)


def raise_queue_alert(detail: str = "12 items; the oldest has waited 300 minutes.") -> Alert:
    return raise_alert(key="review_queue_wait", kind="review_queue_wait", severity="warning",
                       title="Review items wait too long", detail=detail, data={"depth": 12})


# --- delivery ---------------------------------------------------------------------------------------------

def test_a_new_alert_is_posted_signed_and_retried_after_a_500_with_every_attempt_logged(eager, receiver_with):
    receiver = receiver_with(fail_first=1)
    webhook(receiver)

    alert = raise_queue_alert()

    assert [d["valid"] for d in receiver.deliveries] == [True, True]
    body = receiver.deliveries[1]["body"]
    assert receiver.deliveries[0]["body"] == body
    assert {k: body[k] for k in ["event", "alert_id", "kind", "severity", "status", "title", "detail", "count"]} == {
        "event": "alert.raised", "alert_id": alert.pk, "kind": "review_queue_wait", "severity": "warning",
        "status": "open", "title": "Review items wait too long",
        "detail": "12 items; the oldest has waited 300 minutes.", "count": 1}
    assert body["data"] == {"depth": 12}
    assert body["url"] == f"https://spotter.example.com/admin/monitoring/alert/{alert.pk}/change/"
    assert receiver.deliveries[1]["event"] == "alert.raised"
    attempts = list(AlertDelivery.objects.filter(alert=alert).order_by("attempt")
                    .values_list("attempt", "ok", "status_code"))
    assert attempts == [(1, False, 500), (2, True, 200)]


def test_an_alert_raised_again_while_it_lasts_is_counted_not_duplicated_nor_sent_again(eager, receiver_with):
    receiver = receiver_with()
    webhook(receiver)
    mailbox()

    first = raise_queue_alert()
    again = raise_queue_alert(detail="14 items; the oldest has waited 320 minutes.")

    assert again.pk == first.pk and Alert.objects.count() == 1
    again.refresh_from_db()
    assert again.count == 2 and again.detail.startswith("14 items") and again.last_seen > again.first_seen
    assert len(receiver.deliveries) == 1 and len(mail.outbox) == 1


def test_an_acknowledged_alert_stays_one_alert_and_a_resolved_one_comes_back_as_new(eager, receiver_with,
                                                                                    admin_user):
    receiver = receiver_with()
    webhook(receiver)
    alert = raise_queue_alert()

    assert alerts.alert_acknowledge(alert=alert, user=admin_user) is True
    assert raise_queue_alert().pk == alert.pk
    alert.refresh_from_db()
    assert alert.status == Alert.Status.ACKNOWLEDGED and alert.count == 2 and alert.acknowledged_by == admin_user
    assert len(receiver.deliveries) == 1

    assert alerts.alert_resolve(alert=alert, user=admin_user) is True
    assert alerts.alert_acknowledge(alert=alert, user=admin_user) is False  # over: nothing to acknowledge
    back = raise_queue_alert()

    assert back.pk != alert.pk and back.count == 1 and back.status == Alert.Status.OPEN
    assert [d["body"]["alert_id"] for d in receiver.deliveries] == [alert.pk, back.pk]


def test_a_receiver_that_stays_down_is_retried_until_the_task_gives_up(eager, receiver_with, settings):
    receiver = receiver_with(fail_first=1000)
    webhook(receiver)

    alert = raise_queue_alert()

    attempts = AlertDelivery.objects.filter(alert=alert)
    assert attempts.count() == len(receiver.deliveries) == settings.ALERT_DELIVERY_RETRIES + 1
    assert not attempts.filter(ok=True).exists()


def test_a_receiver_with_another_secret_sees_a_wrong_signature(eager, receiver_with):
    receiver = receiver_with(secret="not-the-shared-secret")
    webhook(receiver, secret=SECRET)

    raise_queue_alert()

    assert receiver.deliveries and not any(d["valid"] for d in receiver.deliveries)
    assert set(AlertDelivery.objects.values_list("status_code", flat=True)) == {401}


def test_nothing_is_delivered_before_the_transaction_commits(eager, receiver_with):
    receiver = receiver_with()
    webhook(receiver)

    with TestCase.captureOnCommitCallbacks(execute=False) as callbacks:
        alerts.alert_raise(key="review_queue_wait", kind="review_queue_wait", severity="warning", title="Waiting")
    assert receiver.deliveries == [] and len(callbacks) == 1

    for callback in callbacks:
        callback()
    assert len(receiver.deliveries) == 1


def test_an_email_channel_mails_its_recipients_the_alert_and_its_admin_link(eager):
    mailbox()

    alert = raise_queue_alert()

    [message] = mail.outbox
    assert message.to == ["oncall@example.com", "lead@example.com"]
    assert message.subject == "[Spotter warning] Review items wait too long"
    assert "12 items; the oldest has waited 300 minutes." in message.body
    assert f"https://spotter.example.com/admin/monitoring/alert/{alert.pk}/change/" in message.body
    assert AlertDelivery.objects.get().ok


def test_channels_get_only_the_severities_and_kinds_they_asked_for(eager):
    mailbox(name="everything", recipients="all@example.com")
    mailbox(name="pager", recipients="pager@example.com", min_severity=Alert.Severity.CRITICAL)
    mailbox(name="data team", recipients="data@example.com", kinds=[Alert.Kind.DRIFT])
    mailbox(name="switched off", recipients="off@example.com", enabled=False)

    raise_queue_alert()
    raise_alert(key="drift:questions", kind="drift", severity="critical", title="Questions drift")

    assert sorted(m.to[0] for m in mail.outbox) == [
        "all@example.com", "all@example.com", "data@example.com", "pager@example.com"]


def test_it_refuses_an_unknown_kind_or_severity(db):
    with pytest.raises(ValueError):
        alerts.alert_raise(key="k", kind="weather", severity="warning", title="t")
    with pytest.raises(ValueError):
        alerts.alert_raise(key="k", kind="drift", severity="apocalyptic", title="t")


# --- the conditions the beat job watches ------------------------------------------------------------------

def test_clearing_resolves_the_live_alert_by_itself(eager):
    alert = raise_queue_alert()

    assert alerts.alert_clear(key="review_queue_wait") == 1
    assert alerts.alert_clear(key="review_queue_wait") == 0
    alert.refresh_from_db()
    assert alert.status == Alert.Status.RESOLVED and alert.resolved_by is None


def test_review_items_waiting_too_long_raise_an_alert_that_clears_once_taken(eager, settings):
    settings.ALERT_REVIEW_QUEUE_WAIT_MINUTES = 60
    item = ReviewItemFactory.create()
    assert alerts.review_queue_condition_check() is False

    ReviewItem.objects.filter(pk=item.pk).update(created_at=timezone.now() - timedelta(minutes=90))
    assert alerts.review_queue_condition_check() is True
    alert = Alert.objects.get(key="review_queue_wait", status="open")
    assert "waited 90 minutes" in alert.detail

    ReviewItem.objects.filter(pk=item.pk).update(status="approved")
    assert alerts.review_queue_condition_check() is False
    alert.refresh_from_db()
    assert alert.status == Alert.Status.RESOLVED


def _fact(cost: str) -> AnswerFact:
    return AnswerFact.objects.create(message_id=uuid.uuid4(), conversation_id=uuid.uuid4(), status="complete",
                                     cost=Decimal(cost))


def test_todays_cost_over_the_budget_raises_an_alert_and_a_higher_budget_clears_it(eager, settings):
    settings.ALERT_DAILY_COST_BUDGET_USD = 5.0
    _fact("3.10")
    assert alerts.cost_budget_condition_check(now=timezone.now()) is False
    _fact("2.40")

    assert alerts.cost_budget_condition_check(now=timezone.now()) is True
    assert Alert.objects.get(key="cost_budget").detail == "$5.50 spent today against a budget of $5.00."

    settings.ALERT_DAILY_COST_BUDGET_USD = 10.0
    assert alerts.cost_budget_condition_check(now=timezone.now()) is False
    assert Alert.objects.get(key="cost_budget").status == Alert.Status.RESOLVED


def test_yesterdays_cost_does_not_count_against_today(eager, settings):
    settings.ALERT_DAILY_COST_BUDGET_USD = 1.0
    AnswerFact.objects.filter(pk=_fact("9.00").pk).update(created_at=timezone.now() - timedelta(days=1))
    assert alerts.cost_budget_condition_check(now=timezone.now()) is False


@pytest.fixture
def breaker_gauge() -> Iterator[None]:
    cache.delete(alerts._BREAKER_SINCE)
    yield
    metrics.BREAKER_OPEN.set(0)
    cache.delete(alerts._BREAKER_SINCE)


def test_a_breaker_that_stays_open_raises_a_critical_alert_and_closing_clears_it(eager, settings, breaker_gauge):
    settings.ALERT_BREAKER_OPEN_SECONDS = 300
    opened = timezone.now()
    metrics.BREAKER_OPEN.set(1)

    assert alerts.breaker_condition_check(now=opened) is False  # a short opening is the breaker at work
    assert alerts.breaker_condition_check(now=opened + timedelta(seconds=299)) is False
    assert alerts.breaker_condition_check(now=opened + timedelta(seconds=301)) is True
    assert Alert.objects.get(key="breaker_open").severity == Alert.Severity.CRITICAL

    metrics.BREAKER_OPEN.set(0)
    assert alerts.breaker_condition_check(now=opened + timedelta(seconds=360)) is False
    assert Alert.objects.get(key="breaker_open").status == Alert.Status.RESOLVED
    metrics.BREAKER_OPEN.set(1)  # opening again starts a new wait
    assert alerts.breaker_condition_check(now=opened + timedelta(seconds=400)) is False


BREAKER_PROCESS = """
import sys
from prometheus_client import Gauge
Gauge("spotter_llm_breaker_open", "open", multiprocess_mode="livemax").set(1)
print("open", flush=True)
sys.stdin.read()
"""


def test_a_breaker_open_in_another_live_process_is_seen_and_a_dead_ones_is_not(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    worker = subprocess.Popen([sys.executable, "-c", BREAKER_PROCESS], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ})
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "open\n"
        assert alerts.breaker_open_anywhere() is True
    finally:
        worker.communicate("", timeout=10)  # the worker exits with its breaker still open
    assert alerts.breaker_open_anywhere() is False


def test_the_beat_job_delivers_an_alert_whose_delivery_could_not_be_queued(eager, breaker_gauge):
    from monitoring import tasks

    mailbox()
    with TestCase.captureOnCommitCallbacks(execute=False):  # the broker was down: nothing queued
        alert = alerts.alert_raise(key="drift:questions", kind="drift", severity="warning", title="Questions drift")
    Alert.objects.filter(pk=alert.pk).update(first_seen=timezone.now() - timedelta(minutes=5))

    tasks.alerts_check.delay()
    tasks.alerts_check.delay()

    assert [m.subject for m in mail.outbox] == ["[Spotter warning] Questions drift"]


# --- admin ------------------------------------------------------------------------------------------------

def test_staff_acknowledge_then_resolve_an_alert_with_the_buttons_on_its_page(eager, admin_client, admin_user):
    alert = raise_queue_alert()
    page_url = reverse("admin:monitoring_alert_change", args=[alert.pk])

    page = admin_client.get(page_url).content.decode()
    assert 'id="alert-acknowledge"' in page and 'id="alert-resolve"' in page
    response = admin_client.post(reverse("admin:monitoring_alert_acknowledge", args=[alert.pk]), follow=True)
    assert "Alert acknowledged." in response.content.decode()
    alert.refresh_from_db()
    assert alert.status == Alert.Status.ACKNOWLEDGED and alert.acknowledged_by == admin_user

    page = admin_client.get(page_url).content.decode()
    assert 'id="alert-acknowledge"' not in page and 'id="alert-resolve"' in page
    admin_client.post(reverse("admin:monitoring_alert_resolve", args=[alert.pk]))
    alert.refresh_from_db()
    assert alert.status == Alert.Status.RESOLVED and alert.resolved_by == admin_user
    assert 'id="alert-resolve"' not in admin_client.get(page_url).content.decode()


def test_the_alert_page_shows_its_delivery_attempts(eager, admin_client, receiver_with):
    webhook(receiver_with(fail_first=1))
    alert = raise_queue_alert()

    page = admin_client.get(reverse("admin:monitoring_alert_change", args=[alert.pk])).content.decode()

    assert "answered 500" in page and page.count("ops hook") >= 2


def test_the_list_acknowledges_and_resolves_several_alerts_at_once(eager, admin_client):
    first, second = raise_queue_alert(), raise_alert(key="cost_budget", kind="cost_budget", severity="warning",
                                                     title="Over budget")
    changelist = reverse("admin:monitoring_alert_changelist")

    admin_client.post(changelist, {"action": "acknowledge", "_selected_action": [first.pk, second.pk]})
    assert set(Alert.objects.values_list("status", flat=True)) == {"acknowledged"}
    admin_client.post(changelist, {"action": "resolve", "_selected_action": [first.pk]})
    assert Alert.objects.get(pk=first.pk).status == "resolved"
    assert Alert.objects.get(pk=second.pk).status == "acknowledged"

    listing = admin_client.get(changelist, {"status__exact": "acknowledged", "severity__exact": "warning"})
    assert "Over budget" in listing.content.decode() and "Review items wait too long" not in listing.content.decode()


def test_alert_text_is_escaped_in_admin(eager, admin_client):
    alert = raise_alert(key="x", kind="drift", severity="info", title="<script>alert(1)</script>",
                        data={"html": "<b>bold</b>"})
    for url in [reverse("admin:monitoring_alert_changelist"), reverse("admin:monitoring_alert_change",
                                                                      args=[alert.pk])]:
        page = admin_client.get(url).content.decode()
        assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page
        assert "<b>bold</b>" not in page


def test_send_test_alert_reaches_the_selected_channels_only(eager, admin_client, receiver_with):
    receiver = receiver_with()
    hook = webhook(receiver, min_severity=Alert.Severity.CRITICAL)  # a test goes through whatever the filter
    mailbox()

    with committed():
        response = admin_client.post(reverse("admin:monitoring_alertchannel_changelist"),
                                     {"action": "send_test_alert", "_selected_action": [hook.pk]}, follow=True)

    assert "Test alerts queued for 1 channels" in response.content.decode()
    assert [d["body"]["title"] for d in receiver.deliveries] == ["Test alert for ops hook"]
    assert mail.outbox == []
    test_alert = Alert.objects.get(kind=Alert.Kind.TEST)
    assert test_alert.status == Alert.Status.RESOLVED and test_alert.deliveries.get().ok


def test_a_channel_needs_its_addresses_or_url(admin_client):
    add = reverse("admin:monitoring_alertchannel_add")
    response = admin_client.post(add, {"name": "mail", "kind": "email", "min_severity": "warning",
                                       "recipients": "not an address", "enabled": "on"})
    assert response.status_code == 200 and "valid email" in response.content.decode()
    response = admin_client.post(add, {"name": "hook", "kind": "webhook", "min_severity": "warning",
                                       "enabled": "on"})
    assert re.search(r"needs a URL", response.content.decode())
    assert not AlertChannel.objects.exists()

    admin_client.post(add, {"name": "hook", "kind": "webhook", "min_severity": "critical", "enabled": "on",
                            "url": "https://hooks.example.com/spotter", "secret": "s3", "kinds": ["drift", "anomaly"]})
    channel = AlertChannel.objects.get()
    assert (channel.url, channel.secret, channel.kinds) == ("https://hooks.example.com/spotter", "s3",
                                                           ["drift", "anomaly"])
