"""What the audit log records (django-auditlog): one place listing the audited models and the fields left out.

Audited: what staff change in admin (prompts, experiments, thresholds and settings, review decisions, knowledge
sources, users and roles). Left out: timestamps the change itself moves, counters and progress that machines
update, embeddings, and secrets (recorded as changed, never with their value). Each entry keeps the actor
(auditlog's middleware, for admin requests; none for Celery and management commands) and the fields' values
before and after. The table refuses UPDATE and DELETE but to a visitor's erasure (monitoring migration 0008).

Writes made with `QuerySet.update()` send no signals and are not recorded here: the services that make them
(experiment and arm status moves, review transitions) record those themselves (ReviewDecision for review).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from auditlog.context import auditlog_value
from auditlog.models import LogEntry
from auditlog.registry import auditlog
from auditlog.signals import pre_log
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db.models import Model
from django.db.models.signals import pre_save

from .logging import bound_ids

HIDDEN = "(hidden)"


@dataclass(frozen=True)
class Audited:
    model: str  # "app_label.ModelName"; a model not installed (yet) is skipped
    exclude: tuple[str, ...] = ()
    secret: tuple[str, ...] = ()  # recorded as changed, never with their value
    m2m: tuple[str, ...] = ()
    staff_only: bool = False  # only changes with an actor: machines write these in bulk (ingestion)
    options: dict[str, Any] = field(default_factory=dict)


AUDITED: tuple[Audited, ...] = (
    # prompt versions and labels: a label moving is a deploy or a rollback
    Audited("experiments.PromptVersion", exclude=("created_at",)),
    Audited("experiments.PromptLabel", exclude=("moved_at",)),
    Audited("experiments.PromptLabelMove", exclude=("moved_at",)),
    # experiments (an arm's "last_look" is the result at the last look, computed by the beat job)
    Audited("experiments.Experiment", exclude=("created_at",)),
    Audited("experiments.Arm", exclude=("last_look",)),
    # thresholds and settings edited in admin
    Audited("chat.LLMBudget", exclude=("updated_at",)),
    Audited("chat.CacheCalibration", exclude=("created_at",)),
    Audited("chat.ContentSafetyPolicy", exclude=("updated_at",)),
    Audited("monitoring.AlertChannel", secret=("secret",)),
    Audited("review.SupportHours"),
    # beat updates last_run_at/total_run_count on every run; the schedule and the switch are the settings
    Audited("django_celery_beat.PeriodicTask", exclude=("last_run_at", "total_run_count", "date_changed")),
    Audited("django_celery_beat.IntervalSchedule"),
    Audited("django_celery_beat.CrontabSchedule"),
    Audited("django_celery_beat.SolarSchedule"),
    Audited("django_celery_beat.ClockedSchedule"),
    # approvals and rejections; the answer texts are in the approved answer's own entry (see `review_state_only`)
    Audited("review.ReviewDecision", secret=("before", "after", "diff"),
            options={"mask_callable": "config.audit.review_state_only"}),
    Audited("review.ApprovedAnswer",
            exclude=("embedding", "space_id", "hit_count", "last_hit_at", "created_at", "updated_at")),
    Audited("review.ModelPromotion"),
    # knowledge: status, progress and counts move during ingestion, which the source's entry does not need
    Audited("knowledge.Source", exclude=(
        "status", "error", "progress_done", "progress_total", "document_count", "chunk_count", "ingested_at",
        "created_at", "updated_at")),
    Audited("knowledge.Document", exclude=("content_hash", "created_at", "updated_at"), staff_only=True),
    # users and roles; a new password is recorded as changed, its hash never
    Audited("auth.User", exclude=("last_login",), secret=("password",), m2m=("groups", "user_permissions")),
    Audited("auth.Group", m2m=("permissions",)),
    # privacy: that an erasure happened (the record holds no personal data)
    Audited("chat.ErasureRecord"),
)

# Trainers' workflow (taking an item, giving it back, skipping it, a visitor's signal reopening it) is not a decision.
REVIEW_ACTIONS_AUDITED = frozenset({"approve", "edit", "reject", "cover", "ungroup"})
REVIEW_STATE_KEYS = ("status", "claimed_by")


def audit_register_models() -> list[type[Model]]:
    """Register every installed model of AUDITED with auditlog (once, at startup); returns those registered."""
    registered = []
    for audited in AUDITED:
        model = _installed(audited.model)
        if model is None:
            continue
        _check_fields(model, audited)
        auditlog.register(model, exclude_fields=list(audited.exclude), mask_fields=list(audited.secret),
                          m2m_fields=set(audited.m2m), **{"mask_callable": "config.audit.hidden", **audited.options})
        registered.append(model)
    pre_log.connect(_skip_unwanted, dispatch_uid="config.audit.skip_unwanted")
    return registered


def _installed(label: str) -> type[Model] | None:
    try:
        return apps.get_model(label)
    except LookupError:
        return None


def _check_fields(model: type[Model], audited: Audited) -> None:
    """A misspelt field would silently be audited (exclude) or shown (secret): fail at startup instead."""
    known = {f.name for f in model._meta.get_fields()}
    unknown = set(audited.exclude + audited.secret + audited.m2m) - known
    if unknown:
        raise ImproperlyConfigured(f"config/audit.py: {audited.model} has no field {', '.join(sorted(unknown))}")


def hidden(value: str) -> str:
    """auditlog's mask for secrets: whether it was set, never any of it."""
    return "" if value in ("", "None") else HIDDEN


def review_state_only(value: str) -> str:
    """A review decision's before/after, as the item's state without the answer's text: the approved answer's
    entry records the text once, and visitors' words stay out of a log meant to be kept."""
    try:
        state = json.loads(value)
    except ValueError:
        return hidden(value)
    if not isinstance(state, dict):
        return hidden(value)
    return json.dumps({key: state[key] for key in REVIEW_STATE_KEYS if key in state}, sort_keys=True)


def _skip_unwanted(sender: type[Model], instance: Model, action: int, **kwargs: Any) -> bool:
    """auditlog's pre_log: False leaves the change out of the log."""
    if sender._meta.label == "review.ReviewDecision":
        return getattr(instance, "action", "") in REVIEW_ACTIONS_AUDITED
    if any(a.staff_only and a.model == sender._meta.label for a in AUDITED):
        return _actor_in_context()
    return True


def request_id() -> str | None:
    """AUDITLOG_CID_GETTER: an entry's correlation id is the request id its request logged with."""
    return bound_ids().get("request_id")


def _actor_in_context() -> bool:
    """Whether a signed-in request is making this change. auditlog's middleware leaves its context variable set
    once a request ends in the same thread (a worker thread, the test client); the request's receiver that stamps
    the actor on entries is disconnected then, so that receiver being connected is what says "in a request"."""
    context = auditlog_value.get(None)
    if not context or context.get("actor") is None:
        return False
    live = (context["signal_duid"], id(LogEntry))  # Signal.connect's lookup key: (dispatch_uid, id(sender))
    return any(key == live for key, *_ in pre_save.receivers)


def audit_moved(instance: Model, changes: dict[str, tuple[Any, Any]]) -> None:
    """Record a change a service made with `QuerySet.update()` (a guarded state move, which sends no signal
    auditlog could see): each field's value before and after. The actor is the request's, as for any entry."""
    LogEntry.objects.log_create(instance, action=LogEntry.Action.UPDATE,
                                changes={name: [str(before), str(after)] for name, (before, after) in changes.items()})
