from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from chat.models import Conversation, Message
from chat.tasks import fail_stale_streaming_answers

pytestmark = pytest.mark.django_db


def streaming_answer(age: timedelta) -> Message:
    conversation = Conversation.objects.create(visitor_id="v")
    message = Message.objects.create(conversation=conversation, sequence=1, role=Message.Role.ASSISTANT,
                                      status=Message.Status.STREAMING, text="half an ans")
    Message.objects.filter(pk=message.pk).update(created_at=timezone.now() - age)
    return message


def test_answers_orphaned_by_a_dead_process_are_failed_by_the_beat_job():
    orphan = streaming_answer(timedelta(seconds=settings.CHAT_STALE_STREAM_SECONDS + 60))
    live = streaming_answer(timedelta(seconds=5))

    assert fail_stale_streaming_answers.apply().get() == 1

    orphan.refresh_from_db()
    live.refresh_from_db()
    assert orphan.status == Message.Status.FAILED and orphan.text == "half an ans" and orphan.error
    assert live.status == Message.Status.STREAMING


def test_the_job_is_on_the_beat_schedule():
    schedule = settings.CELERY_BEAT_SCHEDULE["fail-stale-streaming-answers"]
    assert schedule["task"] == fail_stale_streaming_answers.name
