"""The trainer's item page: everything needed to decide on one queued answer, and the buttons that
decide (each a POST to the same view, which calls the guarded service and moves on to the next item)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import ObjectDoesNotExist, PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, QueryDict
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.timesince import timesince

from chat.safety.pii import pii_unseal  # a leaf module: none of chat's models or services

from . import selectors, services
from .models import ReviewItem

# Shown as the page's legend and read by review/shortcuts.js through each control's data-shortcut.
VIEW_PII = "chat.view_pii"  # who may read what a visitor typed before its personal data was masked
SHORTCUTS = [("c", "claim"), ("a", "approve"), ("e", "edit the answer"), ("r", "reject reason"), ("s", "skip"),
             ("j / n", "next item"), ("k", "previous item")]


def trainer_of(request: HttpRequest) -> User:
    """The signed-in user admin views run for (admin_view lets no anonymous visitor through)."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


class Refused(Exception):
    """The form itself is incomplete (the services refuse the rest with ReviewConflict)."""


@dataclass(frozen=True)
class Decision:
    do: Callable[[ReviewItem, User, QueryDict], object]
    done: str
    stay: bool = False  # claiming keeps the trainer on the item they are about to decide


def _reject(item: ReviewItem, user: User, data: QueryDict) -> object:
    reason = data.get("reason", "").strip()
    if not reason:
        raise Refused("Say why the answer is rejected.")
    return services.review_item_reject(item=item, reviewer=user, reason=reason)


def _ungroup(item: ReviewItem, user: User, data: QueryDict) -> object:
    member = data.get("member", "")
    if not member.isdigit():
        raise Refused("Choose the question that is not the same.")
    return services.review_item_ungroup(item=item, member_id=int(member), reviewer=user)


DECISIONS: dict[str, Decision] = {
    "claim": Decision(lambda i, u, d: services.review_item_claim(item=i, user=u),
                      "Claimed: other trainers see it is yours.", stay=True),
    "release": Decision(lambda i, u, d: services.review_item_release(item=i, user=u), "Released to the queue."),
    "approve": Decision(lambda i, u, d: services.review_item_approve(item=i, reviewer=u),
                        "Approved: served to the next paraphrase of the question."),
    "edit": Decision(lambda i, u, d: services.review_item_approve(item=i, reviewer=u, text=d.get("text", "")),
                     "Edited and approved: served to the next paraphrase of the question."),
    "reject": Decision(_reject, "Rejected: the answer is never served again."),
    "skip": Decision(lambda i, u, d: services.review_item_skip(item=i, reviewer=u), "Skipped."),
    "ungroup": Decision(_ungroup, "Taken out of the group: it waits in the queue on its own.", stay=True),
}


class ReviewPageMixin:
    """For ReviewItemAdmin: `<pk>/review/`, linked from the queue list."""

    admin_site: admin.AdminSite
    model: type[ReviewItem]
    message_user: Callable[..., None]
    has_view_permission: Callable[..., bool]
    has_change_permission: Callable[..., bool]

    def review_urls(self) -> list[URLPattern]:
        return [path("<int:pk>/review/", self.admin_site.admin_view(self.review_view),
                     name="review_reviewitem_review")]

    def review_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        item = selectors.review_item_detail(pk=pk)
        if item is None:
            raise Http404
        if request.method == "POST":
            if not self.has_change_permission(request, item):
                raise PermissionDenied
            return self._decide(request, item)
        if not self.has_view_permission(request, item):
            raise PermissionDenied
        return TemplateResponse(request, "admin/review/reviewitem/review.html", self._context(request, item))

    def _decide(self, request: HttpRequest, item: ReviewItem) -> HttpResponse:
        user = trainer_of(request)
        decision = DECISIONS.get(request.POST.get("action", ""))
        if decision is None:
            return redirect(_page(item.pk))
        _, following = selectors.queue_neighbours(item=item, user=user)  # its place before the decision moves it
        try:
            decision.do(item, user, request.POST)
        except (services.ReviewConflict, Refused) as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return redirect(_page(item.pk))
        self.message_user(request, decision.done, messages.SUCCESS)
        if decision.stay:
            return redirect(_page(item.pk))
        return redirect(_page(following) if following else reverse("admin:review_reviewitem_changelist"))

    def _context(self, request: HttpRequest, item: ReviewItem) -> dict[str, Any]:
        user = trainer_of(request)
        previous, following = selectors.queue_neighbours(item=item, user=user)
        message = item.message
        return {
            **self.admin_site.each_context(request), "title": "Review an answer", "opts": self.model._meta,
            "item": item, "answer": message, "question": message.reply_to, "reasons": reason_labels(item),
            "conversation": selectors.review_item_context(item=item), "sources": sources_with_excerpts(message.sources),
            "feedback": _feedback(message), "history": selectors.review_item_history(item=item),
            "claim_expires_at": selectors.claim_expires_at(item=item), "mine": item.claimed_by_id == user.pk,
            "previous": previous and _page(previous), "next": following and _page(following),
            "shortcuts": SHORTCUTS, "decided": item.status in ReviewItem.DECIDED,
            "represented": selectors.represented_questions(item=item), "value_terms": _value_terms(item),
            **_typed_originals(request, message),
        }


def _value_terms(item: ReviewItem) -> list[tuple[str, float]]:
    """The learning value's terms, in the order the item page explains them."""
    terms = item.value_terms or {}
    return [(name, terms[name]) for name in ("uncertainty", "signals", "density", "skips") if name in terms]


def _page(pk: int) -> str:
    return reverse("admin:review_reviewitem_review", args=[pk])


def _typed_originals(request: HttpRequest, message: Any) -> dict[str, str | None]:
    """What the visitor typed before PII masking (question, feedback comment), for a user holding
    chat.view_pii only; None where nothing was masked or the user may not see it."""
    if not request.user.has_perm(VIEW_PII):
        return {"question_typed": None, "comment_typed": None}
    return {"question_typed": _unsealed(message.reply_to), "comment_typed": _unsealed(_feedback(message))}


def _unsealed(item: Any) -> str | None:
    try:
        return pii_unseal(item.sealed_original.token) if item is not None else None
    except ObjectDoesNotExist:
        return None


def _feedback(message: Any) -> Any:
    try:
        return message.feedback
    except ObjectDoesNotExist:  # no vote: the reverse one-to-one raises rather than returning None
        return None


def reason_labels(item: ReviewItem) -> list[str]:
    """Every reason the item is queued for, as a trainer reads it; a thumbs-down with the visitor's words."""
    labels = []
    for code in item.reasons:
        label = ReviewItem.Reason(code).label if code in ReviewItem.Reason.values else code
        if code == ReviewItem.Reason.THUMBS_DOWN and item.feedback_reason:
            label = f"{label}: “{item.feedback_reason}”"
        if code == ReviewItem.Reason.HELD and item.status not in ReviewItem.DECIDED:
            label = f"{label} ({timesince(item.created_at)})"
        labels.append(str(label))
    return labels


def sources_with_excerpts(sources: list[Any]) -> list[dict[str, Any]]:
    """The answer's cited sources, each with the excerpt the model was given (looked up by chunk id)."""
    cited = [s for s in sources if isinstance(s, dict)]
    excerpts = selectors.chunk_excerpts(chunk_ids=[i for i in map(_chunk_id, cited) if i is not None])
    return [{**s, "excerpt": excerpts.get(_chunk_id(s) or 0, "")} for s in cited]


def _chunk_id(source: dict[str, Any]) -> int | None:
    value = str(source.get("chunk_id") or "")
    return int(value) if value.isdigit() else None
