"""Handoffs and support hours in admin, as a trainer of the "Trainers" group with the permissions
demo_setup gives it, and the measures behind the list's summary (review.selectors_handoff)."""

from __future__ import annotations

from datetime import time, timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from review.models import Handoff, SupportHours
from review.selectors_handoff import handoff_measures
from tests.factories import ConversationFactory

pytestmark = pytest.mark.django_db

HANDOFFS = reverse("admin:review_handoff_changelist")
HOURS = reverse("admin:review_supporthours_changelist")
Reason, Status = Handoff.Reason, Handoff.Status


def handoff(ago: timedelta, reason: str = Reason.ASKED, *, reply_after: timedelta | None = None,
            ended: bool = False, resolved: bool | None = None, **fields: Any) -> Handoff:
    requested = timezone.now() - ago
    status = Status.CLOSED if ended else Status.TAKEN if reply_after else Status.WAITING
    return Handoff.objects.create(
        conversation=ConversationFactory.create(), reason=reason, requested_at=requested, status=status,
        taken_at=requested + reply_after if reply_after else None,
        first_reply_at=requested + reply_after if reply_after else None,
        ended_at=requested + timedelta(hours=1) if ended else None, resolved=resolved, **fields)


@pytest.fixture
def history() -> None:
    minutes = timedelta(minutes=1)
    handoff(timedelta(days=2), reply_after=4 * minutes, ended=True, resolved=True, detail="Can I talk to a human?")
    handoff(timedelta(days=3), Reason.ACCOUNT, reply_after=10 * minutes, ended=True, resolved=False,
            detail="I was charged twice, let me talk to someone")
    handoff(timedelta(hours=1), Reason.URGENT, reply_after=2 * minutes, detail="It's an emergency, a person please")
    handoff(timedelta(days=20), Reason.UNHAPPY, reply_after=60 * minutes, ended=True, resolved=True)
    handoff(timedelta(days=40), detail="Long ago")
    handoff(timedelta(minutes=5), detail="Still waiting <b>here</b>")


def test_the_measures_count_reasons_time_the_first_reply_and_share_the_resolved(history):
    week = handoff_measures(since=timezone.now() - timedelta(days=7))
    month = handoff_measures(since=timezone.now() - timedelta(days=30))

    assert week.per_reason == {"asked": 2, "not_answered": 0, "unhappy": 0, "account": 1, "urgent": 1}
    assert (week.total, week.replied, week.median_first_reply) == (4, 3, timedelta(minutes=4))
    assert (week.ended, week.resolved, week.resolved_share) == (2, 1, 0.5)
    assert month.per_reason["unhappy"] == 1 and month.total == 5
    assert month.median_first_reply == timedelta(minutes=7)  # halfway between 4 and 10 minutes
    assert month.resolved_share == pytest.approx(2 / 3)
    assert month.conversations == 6 and month.rate == pytest.approx(5 / 6)


def test_with_no_handoffs_the_measures_are_empty_not_zero():
    measures = handoff_measures(since=timezone.now() - timedelta(days=7))
    assert measures.total == 0 and measures.median_first_reply is None
    assert measures.resolved_share is None and measures.rate is None


def test_a_trainer_reads_the_handoffs_with_their_waits_and_the_summary(trainer_client, history):
    response = trainer_client.get(HANDOFFS)
    body = response.content.decode()
    assert response.status_code == 200
    for text in ['id="handoff-measures"', "last 7 days", "last 30 days", "reason: urgent or safety matter",
                 "4 min (3 replied)", "7 min (4 replied)", "50% (1 of 2)", "67% (2 of 3)",
                 "I was charged twice, let me talk to someone", "(waiting)", "10 min",
                 reverse("admin:chat_conversation_change", args=[Handoff.objects.first().conversation_id])]:
        assert text in body, text
    assert "Still waiting &lt;b&gt;here&lt;/b&gt;" in body and "<b>here</b>" not in body


def test_a_trainer_filters_the_handoffs_by_reason_and_status(trainer_client, history):
    urgent = trainer_client.get(HANDOFFS, {"reason": Reason.URGENT}).content.decode()
    assert "It&#x27;s an emergency" in urgent and "I was charged twice" not in urgent
    waiting = trainer_client.get(HANDOFFS, {"status": Status.WAITING}).content.decode()
    assert "Still waiting" in waiting and "I was charged twice" not in waiting


def test_handoffs_cannot_be_added_or_edited_in_admin(trainer_client, history):
    one = Handoff.objects.get(reason=Reason.ACCOUNT)
    assert trainer_client.get(reverse("admin:review_handoff_add")).status_code == 403
    page = trainer_client.post(reverse("admin:review_handoff_change", args=[one.pk]), {"status": "waiting"})
    assert page.status_code == 403
    one.refresh_from_db()
    assert one.status == Status.CLOSED


def test_a_trainer_sets_support_hours_and_sees_whether_support_is_open(trainer_client, settings):
    settings.SUPPORT_TIME_ZONE = "Europe/Berlin"
    added = trainer_client.post(reverse("admin:review_supporthours_add"),
                                {"weekday": 0, "opens": "09:00", "closes": "17:00"})
    refused = trainer_client.post(reverse("admin:review_supporthours_add"),
                                  {"weekday": 1, "opens": "17:00", "closes": "09:00"})
    assert added.status_code == 302 and refused.status_code == 200
    assert list(SupportHours.objects.values_list("weekday", flat=True)) == [0]
    listing = trainer_client.get(HOURS).content.decode()
    assert "Support hours (Europe/Berlin)" in listing and "Monday" in listing
    assert "open now" in listing or "A person will reply from" in listing


def test_support_hours_are_edited_in_the_list(trainer_client):
    hours = SupportHours.objects.create(weekday=2, opens=time(9), closes=time(17))
    form = {"form-TOTAL_FORMS": "1", "form-INITIAL_FORMS": "1", "form-0-id": str(hours.pk),
            "form-0-opens": "08:00", "form-0-closes": "16:00", "_save": "Save"}
    response = trainer_client.post(HOURS, form)
    assert response.status_code == 302
    hours.refresh_from_db()
    assert (f"{hours.opens:%H:%M}", f"{hours.closes:%H:%M}") == ("08:00", "16:00")
