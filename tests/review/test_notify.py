"""Staff hear of a new handoff: an e-mail (Django's test outbox) and a signed webhook POST to a real local
receiver, which refuses the first delivery so that the Celery task's retry is exercised."""

from __future__ import annotations

import hmac
import socket
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from django.core import mail

from monitoring.webhooks import webhook_signature
from review import notify, tasks
from review.models import Handoff
from tests.factories import ConversationFactory
from tests.webhooks import SECRET

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff(settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    settings.HANDOFF_NOTIFY_EMAILS = ["support@example.com", "lead@example.com"]
    settings.PUBLIC_URL = "https://spotter.example.com/"
    settings.SUPPORT_TIME_ZONE = "Europe/Berlin"
    settings.HANDOFF_WEBHOOK_URL = ""
    settings.HANDOFF_WEBHOOK_SECRET = SECRET
    settings.CELERY_TASK_ALWAYS_EAGER = True  # the tasks run in-process, as the worker would
    return settings


def new_handoff(**fields: Any) -> Handoff:
    defaults = {"reason": Handoff.Reason.ACCOUNT, "detail": "I was charged twice, can I talk to someone?"}
    return Handoff.objects.create(conversation=ConversationFactory.create(), **{**defaults, **fields})


def test_it_mails_staff_the_reason_the_visitors_words_the_time_and_the_live_page(staff):
    handoff = new_handoff()

    tasks.handoff_notify.delay(handoff.pk)

    [message] = mail.outbox
    assert message.to == ["support@example.com", "lead@example.com"]
    assert "a personal or account matter" in message.subject
    for text in ["a personal or account matter", "I was charged twice, can I talk to someone?",
                 f"{handoff.requested_at.astimezone(ZoneInfo('Europe/Berlin')):%Y-%m-%d %H:%M}",
                 f"https://spotter.example.com/admin/chat/conversation/live/?c={handoff.conversation_id}"]:
        assert text in message.body, text
    handoff.refresh_from_db()
    assert handoff.notified_at is not None


def test_it_mails_once_when_the_task_is_delivered_twice(staff):
    handoff = new_handoff()
    assert notify.handoff_email(handoff_id=handoff.pk) == 1
    assert notify.handoff_email(handoff_id=handoff.pk) == 0
    assert len(mail.outbox) == 1


def test_it_mails_no_one_without_an_address(staff):
    staff.HANDOFF_NOTIFY_EMAILS = []
    handoff = new_handoff()
    assert notify.handoff_email(handoff_id=handoff.pk) == 0
    handoff.refresh_from_db()
    assert mail.outbox == [] and handoff.notified_at is None


def test_it_says_when_the_visitor_only_pressed_the_button(staff):
    handoff = new_handoff(reason=Handoff.Reason.ASKED, detail="")
    notify.handoff_email(handoff_id=handoff.pk)
    assert "the visitor used the button" in mail.outbox[0].body


def test_the_webhook_is_signed_retried_after_a_500_and_then_delivered(staff, receiver_with):
    receiver = receiver_with(fail_first=1)
    staff.HANDOFF_WEBHOOK_URL = receiver.url
    staff.HANDOFF_NOTIFY_EMAILS = []  # the webhook alone tells staff here
    handoff = new_handoff(reason=Handoff.Reason.URGENT, detail="It's an emergency, connect me to a person")

    tasks.handoff_notify.delay(handoff.pk)

    assert len(receiver.deliveries) == 2 and all(d["valid"] for d in receiver.deliveries)
    assert receiver.deliveries[0]["body"] == receiver.deliveries[1]["body"] == {
        "event": "handoff.requested", "handoff_id": handoff.pk, "conversation_id": str(handoff.conversation_id),
        "reason": "urgent", "detail": "It's an emergency, connect me to a person",
        "requested_at": handoff.requested_at.isoformat(), "status": "waiting",
    }
    assert receiver.deliveries[1]["event"] == "handoff.requested"
    handoff.refresh_from_db()
    assert handoff.notified_at is not None


def test_a_receiver_with_another_secret_detects_the_signature_as_wrong(staff, receiver_with):
    receiver = receiver_with(secret="not-the-shared-secret")
    staff.HANDOFF_WEBHOOK_URL = receiver.url
    handoff = new_handoff()

    with pytest.raises(notify.WebhookFailed, match="answered 401"):
        notify.handoff_webhook_post(handoff_id=handoff.pk)

    assert [d["valid"] for d in receiver.deliveries] == [False]
    handoff.refresh_from_db()
    assert handoff.notified_at is None


def test_an_unreachable_receiver_fails_so_that_the_task_retries(staff):
    with socket.socket() as closed:  # a port nothing listens on any more
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    staff.HANDOFF_WEBHOOK_URL = f"http://127.0.0.1:{port}/hooks/spotter"
    with pytest.raises(notify.WebhookFailed):
        notify.handoff_webhook_post(handoff_id=new_handoff().pk)


def test_the_signature_is_hmac_sha256_of_the_exact_body():
    assert webhook_signature(body=b'{"a":1}', secret="s") == (
        "sha256=" + hmac.new(b"s", b'{"a":1}', "sha256").hexdigest())
    assert webhook_signature(body=b'{"a": 1}', secret="s") != webhook_signature(body=b'{"a":1}',
                                                                                              secret="s")


def test_no_webhook_is_configured_without_a_url(settings):
    settings.HANDOFF_WEBHOOK_URL = ""
    assert notify.webhook_configured() is False
    settings.HANDOFF_WEBHOOK_URL = "https://hooks.example.com/spotter"
    assert notify.webhook_configured() is True
