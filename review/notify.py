"""Telling staff that a visitor waits for a person: an e-mail to HANDOFF_NOTIFY_EMAILS and a JSON POST to
HANDOFF_WEBHOOK_URL, signed so the receiver can tell it came from us. Both run in Celery tasks
(review/tasks.py), never inside a request or a transaction: a slow mail server or receiver must not hold up
the visitor's socket."""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx
from django.conf import settings
from django.core.mail import send_mail
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from monitoring.webhooks import webhook_headers

from .hours import support_zone
from .models import Handoff

log = logging.getLogger(__name__)

EVENT = "handoff.requested"
# A receiver that takes longer is treated as down: the task retries later instead of holding a worker.
WEBHOOK_TIMEOUT_SECONDS = 10.0


class WebhookFailed(Exception):
    """The receiver could not be reached or did not answer 2xx: the Celery task retries on it."""


def webhook_configured() -> bool:
    return bool(settings.HANDOFF_WEBHOOK_URL)


def live_page_url(*, handoff: Handoff) -> str:
    """Absolute link to the live conversations page, opened on this handoff's conversation."""
    try:
        path = reverse("admin:chat_conversation_live") + f"?c={handoff.conversation_id}"
    except NoReverseMatch:  # chat's admin not installed: the admin index is the best we can point at
        path = reverse("admin:index")
    return settings.PUBLIC_URL.rstrip("/") + path


def handoff_email(*, handoff_id: int) -> int:
    """Mail the staff addresses about a new handoff; returns the number of messages sent (0 with no address,
    or when the handoff is gone or staff were already told: a task delivered twice mails once)."""
    recipients = list(settings.HANDOFF_NOTIFY_EMAILS)
    handoff = Handoff.objects.filter(pk=handoff_id).first()
    if not recipients or handoff is None or handoff.notified_at is not None:
        return 0
    sent = send_mail(subject=_email_subject(handoff), message=_email_body(handoff),
                     from_email=settings.DEFAULT_FROM_EMAIL, recipient_list=recipients)
    _mark_notified(handoff_id)
    return sent


def _email_subject(handoff: Handoff) -> str:
    return f"A visitor is waiting for a person ({handoff.get_reason_display()})"


def _email_body(handoff: Handoff) -> str:
    asked = handoff.requested_at.astimezone(support_zone()).strftime("%Y-%m-%d %H:%M %Z")
    said = handoff.detail or "(nothing typed: the visitor used the button)"
    return (f"A visitor asked for a person in the chat.\n\n"
            f"Reason: {handoff.get_reason_display()}\n"
            f"What they said: {said}\n"
            f"Asked at: {asked}\n\n"
            f"Take it over on the live conversations page:\n{live_page_url(handoff=handoff)}\n")


def _mark_notified(handoff_id: int) -> None:
    # Guarded: the first channel to reach staff (e-mail or webhook) sets the time, a later one keeps it.
    Handoff.objects.filter(pk=handoff_id, notified_at__isnull=True).update(notified_at=timezone.now())


def handoff_payload(*, handoff: Handoff) -> dict[str, Any]:
    return {"event": EVENT, "handoff_id": handoff.pk, "conversation_id": str(handoff.conversation_id),
            "reason": handoff.reason, "detail": handoff.detail, "requested_at": handoff.requested_at.isoformat(),
            "status": handoff.status}


def handoff_webhook_post(*, handoff_id: int) -> None:
    """POST the handoff to HANDOFF_WEBHOOK_URL; raises WebhookFailed on a connection error or a non-2xx
    answer so that the task retries. No URL, or a handoff deleted meanwhile: nothing to send."""
    handoff = Handoff.objects.filter(pk=handoff_id).first()
    if not webhook_configured() or handoff is None:
        return
    body = json.dumps(handoff_payload(handoff=handoff), separators=(",", ":")).encode()
    _post(url=settings.HANDOFF_WEBHOOK_URL, body=body,
          headers=webhook_headers(body=body, event=EVENT, secret=settings.HANDOFF_WEBHOOK_SECRET))
    _mark_notified(handoff_id)


def _post(*, url: str, body: bytes, headers: dict[str, str]) -> None:
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=WEBHOOK_TIMEOUT_SECONDS)
    except httpx.HTTPError as exc:
        log.warning("handoff webhook %s unreachable: %s", url, exc)
        raise WebhookFailed(f"{url}: {exc}") from exc
    if not response.is_success:
        log.warning("handoff webhook %s answered %s", url, response.status_code)
        raise WebhookFailed(f"{url} answered {response.status_code}")
