"""A person in the conversation: the handoff's states (waiting → taken → handed back or closed), each a
guarded change, and the live page's group on the channel layer. Chat keeps the conversation and its
messages: it asks for a handoff here, and hears of its end through `signals.handoff_ended`."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from monitoring.services import handoff_fact_update

from .models import Handoff
from .signals import handoff_ended

logger = logging.getLogger(__name__)
Status = Handoff.Status
LIVE_GROUP = "takeover.live"  # the live conversations pages of every trainer


class HandoffConflict(Exception):
    """The handoff's state does not allow the action; `code` is stable: `taken_by_other`, `not_open`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


# --- reads -----------------------------------------------------------------------------------------------


def handoff_open_for(*, conversation_id: uuid.UUID) -> Handoff | None:
    """The conversation's handoff still waiting or taken over, if any."""
    return Handoff.objects.filter(conversation_id=conversation_id, status__in=Handoff.OPEN).first()


def handoffs_live() -> QuerySet[Handoff]:
    """What the live page lists: waiting ones first (longest wait first), then those taken over."""
    return (Handoff.objects.filter(status__in=Handoff.OPEN).select_related("taken_by")
            .order_by("-status", "requested_at"))  # "waiting" sorts after "taken": reversed


# --- changes ---------------------------------------------------------------------------------------------


def handoff_request(*, conversation_id: uuid.UUID, reason: str, detail: str = "") -> tuple[Handoff, bool]:
    """Open a handoff for the conversation, or return the one open (asking twice is one request).
    Staff are notified and the live pages told once the transaction commits."""
    with transaction.atomic():
        open_one = Handoff.objects.select_for_update().filter(
            conversation_id=conversation_id, status__in=Handoff.OPEN).first()
        if open_one is not None:
            return open_one, False
        handoff = Handoff.objects.create(conversation_id=conversation_id, reason=Handoff.Reason(reason),
                                         detail=detail[:300])
        transaction.on_commit(lambda: _notify_staff(handoff.pk))
        transaction.on_commit(lambda: live_announce(conversation_id=conversation_id, event="requested"))
    return handoff, True


def _notify_staff(handoff_id: int) -> None:
    from . import tasks  # tasks import this module's app's services

    try:
        tasks.handoff_notify.delay(handoff_id)
    except Exception:  # no broker: the live page still shows it
        logger.warning("could not queue the notification of handoff %s", handoff_id, exc_info=True)


def handoff_take(*, handoff: Handoff, user: User) -> Handoff:
    """A trainer takes the conversation over (taking one's own again does nothing)."""
    now = timezone.now()
    taken = Handoff.objects.filter(
        Q(status=Status.WAITING) | Q(status=Status.TAKEN, taken_by=user), pk=handoff.pk
    ).update(status=Status.TAKEN, taken_by=user, taken_at=now)
    if not taken:
        raise _conflict(handoff.pk, user)
    handoff_fact_update(handoff_id=handoff.pk, status=Status.TAKEN)
    live_announce(conversation_id=handoff.conversation_id, event="taken")
    return Handoff.objects.get(pk=handoff.pk)


def handoff_replied(*, handoff: Handoff, user: User, at: datetime) -> None:
    """A trainer's reply: only by the one who took it over; the first one is measured."""
    if not Handoff.objects.filter(pk=handoff.pk, status=Status.TAKEN, taken_by=user).exists():
        raise _conflict(handoff.pk, user)
    if Handoff.objects.filter(pk=handoff.pk, first_reply_at__isnull=True).update(first_reply_at=at):
        handoff_fact_update(handoff_id=handoff.pk, status=Status.TAKEN, first_reply_at=at)


def handoff_end(*, handoff: Handoff, user: User, close: bool, resolved: bool | None = None) -> Handoff:
    """Hand the conversation back to the assistant, or close it (resolved or not). Only the trainer who
    took it over, or anyone while it still waits."""
    now = timezone.now()
    status = Status.CLOSED if close else Status.RETURNED
    with transaction.atomic():
        ended = Handoff.objects.filter(
            Q(status=Status.WAITING) | Q(status=Status.TAKEN, taken_by=user), pk=handoff.pk
        ).update(status=status, ended_at=now, resolved=resolved, taken_by=handoff.taken_by or user)
        if not ended:
            raise _conflict(handoff.pk, user)
        handoff_fact_update(handoff_id=handoff.pk, status=status, ended_at=now, resolved=resolved)
        handoff_ended.send(sender=Handoff, conversation_id=handoff.conversation_id, status=status)
        transaction.on_commit(lambda: live_announce(conversation_id=handoff.conversation_id, event=status))
    return Handoff.objects.get(pk=handoff.pk)


def _conflict(handoff_id: int, user: User) -> HandoffConflict:
    current = Handoff.objects.select_related("taken_by").get(pk=handoff_id)
    if current.status == Status.TAKEN and current.taken_by_id != user.pk:
        holder = current.taken_by.get_username() if current.taken_by else "another trainer"
        return HandoffConflict("taken_by_other", f"{holder} has taken this conversation over.")
    return HandoffConflict("not_open", f"This conversation is no longer waiting ({current.get_status_display()}).")


# --- the live page's group ---------------------------------------------------------------------------------


def live_announce(*, conversation_id: uuid.UUID, event: str) -> None:
    """Tell every live page that a conversation changed (a request, a message, a take-over, an end); the
    page fetches what it shows. Best effort: the page also refreshes on its own."""
    try:
        async_to_sync(get_channel_layer().group_send)(
            LIVE_GROUP, {"type": "live.changed", "conversation_id": str(conversation_id), "event": event})
    except Exception:
        logger.warning("could not tell the live pages about %s", conversation_id, exc_info=True)
