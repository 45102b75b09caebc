"""Admin → Live conversations (`/admin/chat/conversation/live/`): the conversations waiting for a person
or taken over, each with how long it has waited and its last messages; a trainer takes one over, replies
(the visitor gets each reply at once), hands it back to the assistant or closes it. The page follows the
channel layer through `/ws/live/` and fetches its panel again on every change."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone

from review.models import Handoff
from review.takeover import HandoffConflict, handoff_end, handoff_open_for, handoff_take, handoffs_live

from . import services
from .errors import CodedError
from .models import Conversation, Message

LAST_MESSAGES = 6


class LivePageMixin:
    """For ConversationAdmin."""

    admin_site: admin.AdminSite
    model: type[Conversation]
    message_user: Callable[..., None]

    def live_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("live/", view(self.live_view), name="chat_conversation_live"),
            path("live/panel/", view(self.live_panel), name="chat_conversation_live_panel"),
            path("live/<uuid:conversation_id>/", view(self.live_act), name="chat_conversation_live_act"),
        ]

    def live_view(self, request: HttpRequest) -> HttpResponse:
        _require(request, "review.view_handoff")
        context = {**self.admin_site.each_context(request), "title": "Live conversations", "opts": self.model._meta,
                   **_panel_context(request)}
        return TemplateResponse(request, "admin/chat/conversation/live.html", context)

    def live_panel(self, request: HttpRequest) -> HttpResponse:
        _require(request, "review.view_handoff")
        return TemplateResponse(request, "admin/chat/conversation/live_panel.html", _panel_context(request))

    def live_act(self, request: HttpRequest, conversation_id: uuid.UUID) -> HttpResponse:
        if request.method != "POST":
            raise PermissionDenied
        _require(request, "review.change_handoff")
        handoff = handoff_open_for(conversation_id=conversation_id)
        back = reverse("admin:chat_conversation_live") + f"?c={conversation_id}"
        if handoff is None:
            self.message_user(request, "Nobody is waiting for a person in this conversation any more.",
                              messages.WARNING)
            return redirect(back)
        action = ACTIONS.get(request.POST.get("action", ""))
        if action is None:
            raise Http404
        try:
            done = action(handoff, _trainer(request), request.POST)
        except (HandoffConflict, CodedError) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return redirect(back)
        self.message_user(request, done, messages.SUCCESS)
        return redirect(back if request.POST.get("action") in ("take", "reply") else reverse(
            "admin:chat_conversation_live"))


def _require(request: HttpRequest, permission: str) -> None:
    """Taking conversations over is the trainers' work (review's handoffs), whoever may edit chat's rows."""
    if not request.user.has_perm(permission):
        raise PermissionDenied


def _trainer(request: HttpRequest) -> User:
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def _take(handoff: Handoff, user: User, data: Any) -> str:
    handoff_take(handoff=handoff, user=user)
    return "Taken over: your replies reach the visitor at once."


def _reply(handoff: Handoff, user: User, data: Any) -> str:
    if handoff.status == Handoff.Status.WAITING:
        handoff = handoff_take(handoff=handoff, user=user)  # replying to a waiting visitor takes it over
    services.human_reply(conversation_id=handoff.conversation_id, user=user, text=data.get("text", ""))
    return "Sent."


def _return(handoff: Handoff, user: User, data: Any) -> str:
    handoff_end(handoff=handoff, user=user, close=False)
    return "Handed back to the assistant."


def _close(handoff: Handoff, user: User, data: Any) -> str:
    handoff_end(handoff=handoff, user=user, close=True, resolved=data.get("resolved") == "yes")
    return "Conversation closed."


ACTIONS: dict[str, Callable[[Handoff, User, Any], str]] = {
    "take": _take, "reply": _reply, "return": _return, "close": _close,
}


def _panel_context(request: HttpRequest) -> dict[str, Any]:
    """The open handoffs with their conversations' last messages, and the chosen one's whole thread."""
    now = timezone.now()
    handoffs = list(handoffs_live())
    chosen_id = request.GET.get("c", "")
    rows: list[dict[str, Any]] = []
    for handoff in handoffs:
        last = list(Message.objects.filter(conversation_id=handoff.conversation_id).order_by("-sequence")
                    [:LAST_MESSAGES])[::-1]
        rows.append({"handoff": handoff, "waited": now - handoff.requested_at, "last": last,
                     "chosen": str(handoff.conversation_id) == chosen_id})
    chosen: dict[str, Any] | None = next((row for row in rows if row["chosen"]), None)
    thread = (list(Message.objects.filter(conversation_id=chosen["handoff"].conversation_id).order_by("sequence"))
              if chosen else [])
    user = request.user
    return {"rows": rows, "chosen": chosen, "thread": thread,
            "mine": bool(chosen and chosen["handoff"].taken_by_id == getattr(user, "pk", None))}
