from __future__ import annotations

import uuid
from collections.abc import Sequence
from decimal import Decimal

from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Max
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.utils import timezone

from config.audit import audit_moved

from .assignment import forget_running_experiments
from .gate import GateRefused, production_gate
from .models import PRODUCTION, Arm, Experiment, PromptLabel, PromptLabelMove, PromptVersion, ShadowAnswer
from .selectors import forget_active_prompt
from .templating import template_errors


@transaction.atomic
def prompt_version_create(
    *, name: str, system_prompt: str, model: str = "", labels: Sequence[str] = (), created_by: User | None = None,
) -> PromptVersion:
    """A new version of the named prompt; earlier versions stay as they were. `labels` move to it
    (e.g. ["production"] to deploy it at once). ValidationError on unknown template variables."""
    errors = template_errors(system_prompt)
    if errors:
        raise ValidationError({"system_prompt": errors})
    latest = PromptVersion.objects.select_for_update().filter(name=name).aggregate(v=Max("version"))["v"] or 0
    version = PromptVersion.objects.create(
        name=name, version=latest + 1, system_prompt=system_prompt, model=model, created_by=created_by,
    )
    for label in labels:
        prompt_label_move(version=version, label=label, moved_by=created_by, reason="created with this label")
    return version


@transaction.atomic
def prompt_label_move(
    *, version: PromptVersion, label: str, moved_by: User | None = None, reason: str = "", override: str = "",
) -> PromptLabelMove | None:
    """Point the prompt's `label` at `version` and record who moved it from which version; None when it
    already pointed there. GateRefused when `production` would go to a version the evaluation gate
    refuses and no `override` reason is given (the reason is recorded with the move)."""
    current = PromptLabel.objects.select_for_update().filter(prompt_name=version.name, label=label).first()
    if current is not None and current.version_id == version.pk:
        return None
    if label == PRODUCTION:
        verdict = production_gate(version=version)
        if not verdict.passed and not override.strip():
            raise GateRefused(verdict)
        if not verdict.passed:
            reason = f"{reason} (override of the evaluation gate: {override.strip()}; {verdict.note})".strip()
    previous_id = current.version_id if current else None
    if current is None:
        PromptLabel.objects.create(prompt_name=version.name, label=label, version=version, moved_by=moved_by)
    else:
        current.version, current.moved_by = version, moved_by
        current.save(update_fields=["version", "moved_by", "moved_at"])
    return PromptLabelMove.objects.create(
        prompt_name=version.name, label=label, from_version_id=previous_id, to_version=version, moved_by=moved_by,
        reason=reason,
    )


def prompt_label_rollback(*, prompt_name: str, label: str, moved_by: User | None = None) -> PromptLabelMove | None:
    """Move the label back to where its last move took it from; None when there is nowhere to go."""
    last = PromptLabelMove.objects.filter(prompt_name=prompt_name, label=label).select_related("from_version").first()
    if last is None or last.from_version is None:
        return None
    # A rollback is how a bad deploy is undone: the gate does not stand in its way, and says so in the record.
    return prompt_label_move(version=last.from_version, label=label, moved_by=moved_by,
                             reason=f"rollback of the move to version id {last.to_version_id}", override="rollback")


def _forget_now_and_on_commit() -> None:
    """Now for this thread (it sees its own transaction), again on commit for the others (one that
    read in between cached the old state)."""
    for forget in (forget_active_prompt, forget_running_experiments):
        forget()
        transaction.on_commit(forget)


@receiver([post_save, post_delete], sender=PromptVersion)
@receiver([post_save, post_delete], sender=PromptLabel)
@receiver([post_save, post_delete], sender=Experiment)
@receiver([post_save, post_delete], sender=Arm)
def _prompts_or_experiments_saved(sender: type, **kwargs: object) -> None:
    _forget_now_and_on_commit()


# --- experiments: lifecycle --------------------------------------------------------------------------


def experiment_problems(*, experiment: Experiment) -> list[str]:
    """Why the experiment cannot run as set up; empty: it can."""
    arms = list(experiment.arms.filter(shadow=False))
    problems = []
    if len(arms) < 2:
        problems.append("An experiment needs at least two live (not shadow) arms.")
    controls = [a for a in arms if a.is_control]
    if len(controls) != 1:
        problems.append("Exactly one arm must be the control.")
    elif controls[0].weight <= 0:
        problems.append("The control arm needs a weight above 0.")
    own = [a for a in arms if not a.is_control and not a.share_reuse]
    for arm in own:
        if any(b.pk != arm.pk and b.prompt_version_id == arm.prompt_version_id for b in arms):
            problems.append(
                f"Arm {arm.name} shares its prompt version with another arm, so their stored answers would mix: "
                "tick 'share reuse' or give it a version of its own (save the same text as a new version).")
    return problems


def experiment_start(*, experiment: Experiment, baseline: dict[str, float] | None = None) -> bool:
    """Draft or paused → running; False when it was in neither state. ValidationError when it cannot
    run. `baseline` (fixed thresholds of the guardrails) is stored the first time it starts."""
    problems = experiment_problems(experiment=experiment)
    if problems:
        raise ValidationError(problems)
    now = timezone.now()
    started = Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.DRAFT).update(
        status=Experiment.Status.RUNNING, started_at=now, baseline=baseline or {})
    resumed = started or Experiment.objects.filter(pk=experiment.pk, status=Experiment.Status.PAUSED).update(
        status=Experiment.Status.RUNNING)
    _forget_now_and_on_commit()
    if started or resumed:
        audit_moved(experiment, {"status": (experiment.status, Experiment.Status.RUNNING)})
    return bool(started or resumed)


def experiment_pause(*, experiment: Experiment) -> bool:
    """Running → paused: everyone gets production again until it resumes (assignments come back as they were)."""
    return _experiment_move(experiment, [Experiment.Status.RUNNING], status=Experiment.Status.PAUSED)


def experiment_stop(*, experiment: Experiment) -> bool:
    """Running or paused → stopped, for good."""
    return _experiment_move(experiment, [Experiment.Status.RUNNING, Experiment.Status.PAUSED],
                            status=Experiment.Status.STOPPED, stopped_at=timezone.now())


def _experiment_move(experiment: Experiment, sources: list[str], **fields: object) -> bool:
    moved = Experiment.objects.filter(pk=experiment.pk, status__in=sources).update(**fields)
    _forget_now_and_on_commit()
    if moved:
        audit_moved(experiment, {"status": (experiment.status, fields["status"])})
    return moved == 1


def arm_pause(*, arm: Arm, reason: str) -> bool:
    """An active arm stops answering: its visitors go to control. The control arm is never paused."""
    paused = Arm.objects.filter(pk=arm.pk, status=Arm.Status.ACTIVE, is_control=False).update(
        status=Arm.Status.PAUSED, pause_reason=reason, paused_at=timezone.now())
    _forget_now_and_on_commit()
    if paused:
        audit_moved(arm, {"status": (arm.status, Arm.Status.PAUSED), "pause_reason": (arm.pause_reason, reason)})
    return paused == 1


def arm_resume(*, arm: Arm) -> bool:
    resumed = Arm.objects.filter(pk=arm.pk, status=Arm.Status.PAUSED).update(
        status=Arm.Status.ACTIVE, pause_reason="", paused_at=None)
    _forget_now_and_on_commit()
    if resumed:
        audit_moved(arm, {"status": (arm.status, Arm.Status.ACTIVE)})
    return resumed == 1


@transaction.atomic
def experiment_declare_winner(*, experiment: Experiment, arm: Arm, user: User | None) -> bool:
    """Stop the experiment with `arm` as its winner and deploy the arm's prompt version (`production`,
    recorded; nothing moves when it is production already). False when a winner was declared already or the
    experiment is not running or paused."""
    if arm.experiment_id != experiment.pk:
        raise ValidationError("That arm belongs to another experiment.")
    if arm.shadow:
        raise ValidationError("A shadow arm never answered a visitor: it cannot win.")
    declared = Experiment.objects.filter(  # only one that has run: a draft's arms were never shown
        pk=experiment.pk, winner__isnull=True,
        status__in=[Experiment.Status.RUNNING, Experiment.Status.PAUSED]).update(
        winner=arm, status=Experiment.Status.STOPPED, stopped_at=timezone.now())
    _forget_now_and_on_commit()
    if declared:
        audit_moved(experiment, {"status": (experiment.status, Experiment.Status.STOPPED), "winner": ("", arm)})
        prompt_label_move(version=arm.prompt_version, label=PRODUCTION, moved_by=user,
                          reason=f"winner of experiment {experiment.name!r}: arm {arm.name}")
    return bool(declared)


# --- shadow arms -----------------------------------------------------------------------------------


def shadow_answer_record(
    *, arm_id: int, live_message_id: uuid.UUID, question: str, live_text: str, shadow_text: str, model: str,
    similarity: float | None, live_latency_ms: int | None, shadow_latency_ms: int, live_tokens: int,
    shadow_tokens: int, live_cost: Decimal, cost: Decimal, preference: str = "", judge_reason: str = "",
) -> ShadowAnswer | None:
    """Store a shadow arm's answer beside the live one; None when the arm shadowed that answer already
    (a task delivered twice stores one)."""
    answer, created = ShadowAnswer.objects.get_or_create(arm_id=arm_id, live_message_id=live_message_id, defaults={
        "question": question, "live_text": live_text, "shadow_text": shadow_text, "model": model,
        "similarity": similarity, "live_length": len(live_text), "shadow_length": len(shadow_text),
        "live_latency_ms": live_latency_ms, "shadow_latency_ms": shadow_latency_ms, "live_tokens": live_tokens,
        "shadow_tokens": shadow_tokens, "live_cost": live_cost, "cost": cost, "preference": preference,
        "judge_reason": judge_reason[:500],
    })
    return answer if created else None
