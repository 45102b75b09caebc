"""Handoffs measured in monitoring's own table: per reason, per prompt version against its answers (what a
prompt experiment compares), time to a person's first reply, share resolved."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from chat.services import conversation_handoff, human_reply
from monitoring.models import AnswerFact
from monitoring.selectors import handoff_rates
from review.models import Handoff
from review.takeover import handoff_end, handoff_take
from tests.factories import AnswerFactory, PromptVersionFactory, TrainerFactory

pytestmark = pytest.mark.django_db


def answered(prompt) -> object:
    answer = AnswerFactory.create(prompt_version_id=prompt.pk)
    AnswerFact.objects.create(message_id=answer.pk, conversation_id=answer.conversation_id, status="complete",
                              prompt_version_id=prompt.pk)
    return answer.conversation


def test_handoffs_are_measured_per_reason_and_prompt_version_with_first_reply_and_resolution():
    a, b = PromptVersionFactory.create(), PromptVersionFactory.create()
    conversations = [answered(a) for _ in range(4)] + [answered(b) for _ in range(2)]
    trainer = TrainerFactory.create()
    first = conversation_handoff(conversation=conversations[0], reason=Handoff.Reason.UNHAPPY)
    conversation_handoff(conversation=conversations[1])
    conversation_handoff(conversation=conversations[4], reason=Handoff.Reason.URGENT)
    handoff_take(handoff=first, user=trainer)
    human_reply(conversation_id=conversations[0].pk, user=trainer, text="Here to help.")
    handoff_end(handoff=Handoff.objects.get(pk=first.pk), user=trainer, close=True, resolved=True)

    rates = handoff_rates(since=timezone.now() - timedelta(days=1))

    assert rates["per_reason"] == {"unhappy": 1, "asked": 1, "urgent": 1}
    by_version = {row["prompt_version_id"]: row for row in rates["per_prompt_version"]}
    assert (by_version[a.pk]["handoffs"], by_version[a.pk]["answers"], by_version[a.pk]["rate"]) == (2, 4, 0.5)
    assert by_version[a.pk]["resolved_share"] == 1.0 and by_version[b.pk]["resolved_share"] is None
    assert rates["median_first_reply_seconds"] is not None and rates["median_first_reply_seconds"] >= 0
