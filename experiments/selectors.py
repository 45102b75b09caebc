from __future__ import annotations

import difflib
import uuid
from dataclasses import dataclass
from decimal import Decimal

import cachetools.func
from django.conf import settings
from django.db.models import Avg, Count, Q, QuerySet, Sum

from monitoring.models import AnswerFact

from .models import PRODUCTION, Arm, Experiment, PromptLabel, PromptLabelMove, PromptVersion, ShadowAnswer

# Used until an operator labels a prompt version `production`; deliberately domain-free.
DEFAULT_SYSTEM_PROMPT = (
    "You are a helpful assistant. Answer only from the numbered knowledge excerpts you are given, "
    "cite them with their numbers like [1], and say so plainly when they do not contain the answer."
)


@dataclass(frozen=True)
class PromptChoice:
    prompt_version_id: int | None
    system_prompt: str
    model: str  # empty: the gateway's configured model
    name: str = ""  # the prompt's name (approved answers can be scoped to it)


# Read for every answer, so kept per process this long: a change made in this process is seen at
# once (see forget_active_prompt), one made in another process within this time.
ACTIVE_PROMPT_CACHE_SECONDS = 2.0


@cachetools.func.ttl_cache(maxsize=1, ttl=ACTIVE_PROMPT_CACHE_SECONDS)
def prompt_for_new_answer() -> PromptChoice:
    """The answer prompt's `production` version, as answers use it."""
    version = answer_prompt_version()
    if version is None:
        return PromptChoice(None, DEFAULT_SYSTEM_PROMPT, "")
    return prompt_choice(version)


def answer_prompt_version() -> PromptVersion | None:
    """The answer prompt's `production` version (ANSWER_PROMPT_NAME), read now; None: none labelled."""
    labels = PromptLabel.objects.filter(label=PRODUCTION).select_related("version")
    if settings.ANSWER_PROMPT_NAME:
        labels = labels.filter(prompt_name=settings.ANSWER_PROMPT_NAME)
    label = labels.order_by("-moved_at", "-pk").first()
    return label.version if label else None


def prompt_choice(version: PromptVersion, *, model: str = "") -> PromptChoice:
    return PromptChoice(version.pk, version.system_prompt, model or version.model, version.name)


def forget_active_prompt() -> None:
    prompt_for_new_answer.cache_clear()


def production_version(*, prompt_name: str) -> PromptVersion | None:
    label = PromptLabel.objects.filter(prompt_name=prompt_name, label=PRODUCTION).select_related("version").first()
    return label.version if label else None


def version_labels(*, version: PromptVersion) -> list[str]:
    return list(version.labels.order_by("label").values_list("label", flat=True))


def label_history(*, prompt_name: str, limit: int = 50) -> QuerySet[PromptLabelMove]:
    return PromptLabelMove.objects.filter(prompt_name=prompt_name).select_related(
        "from_version", "to_version", "moved_by")[:limit]


def answers_per_version(*, version_ids: list[int]) -> dict[int, int]:
    """How many answers each version gave (monitoring's facts: what answered is recorded there)."""
    rows = AnswerFact.objects.filter(prompt_version_id__in=version_ids).values_list("prompt_version_id").annotate(
        n=Count("pk")).values_list("prompt_version_id", "n")
    return {version_id: n for version_id, n in rows if version_id is not None}


def version_diff(*, old: PromptVersion, new: PromptVersion) -> list[tuple[str, str]]:
    """A unified diff of two versions' text, line by line, with each line's kind (add, remove, hunk,
    context) for the admin to style; rendered with autoescape, never as markup."""
    lines = difflib.unified_diff(
        old.system_prompt.splitlines(), new.system_prompt.splitlines(), fromfile=str(old), tofile=str(new),
        lineterm="", n=3,
    )
    return [(_diff_kind(line), line) for line in lines]


def _diff_kind(line: str) -> str:
    if line.startswith(("+++", "---")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "add", "-": "remove"}.get(line[:1], "context")


# --- shadow arms -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShadowArmShare:
    arm_id: int
    salt: str  # the experiment's
    share: float
    languages: frozenset[str]  # the experiment's; empty: every language


def shadow_arms_answering() -> list[ShadowArmShare]:
    """The shadow arms that may answer live questions now: active, in a running experiment, with a share
    and a budget above 0 (a budget of 0 means no shadow answers at all)."""
    arms = Arm.objects.filter(
        shadow=True, status=Arm.Status.ACTIVE, experiment__status=Experiment.Status.RUNNING, shadow_share__gt=0,
        shadow_budget__gt=0,
    ).values_list("pk", "experiment__salt", "shadow_share", "experiment__languages").order_by("pk")
    return [ShadowArmShare(pk, salt, share, frozenset(languages)) for pk, salt, share, languages in arms]


def shadow_arm_ready(*, arm_id: int, live_message_id: uuid.UUID) -> Arm | None:
    """The shadow arm when it may answer this live answer now: still an active shadow arm of a running
    experiment, this answer not shadowed by it yet, and its spend below its budget. Read before generating,
    so an arm over budget costs nothing more (answers already being generated may overshoot it by theirs)."""
    arm = Arm.objects.filter(
        pk=arm_id, shadow=True, status=Arm.Status.ACTIVE, experiment__status=Experiment.Status.RUNNING,
    ).select_related("prompt_version", "experiment").first()
    if arm is None or ShadowAnswer.objects.filter(arm=arm, live_message_id=live_message_id).exists():
        return None
    return arm if shadow_arm_spent(arm_id=arm.pk) < arm.shadow_budget else None


def shadow_arm_spent(*, arm_id: int) -> Decimal:
    spent = ShadowAnswer.objects.filter(arm_id=arm_id).aggregate(spent=Sum("cost"))["spent"]
    return spent if spent is not None else Decimal(0)


def shadow_arms_of(*, experiment: Experiment) -> QuerySet[Arm]:
    """The experiment's shadow arms, each with `answered` and `spent`."""
    return experiment.arms.filter(shadow=True).select_related("prompt_version").annotate(
        answered=Count("shadow_answers"), spent=Sum("shadow_answers__cost")).order_by("pk")


@dataclass(frozen=True)
class ShadowSummary:
    answers: int
    judged: int
    shadow_preferred: float | None  # shares of the judged answers; None: none judged
    live_preferred: float | None
    mean_similarity: float | None
    mean_live_length: float | None
    mean_shadow_length: float | None
    mean_live_latency_ms: float | None
    mean_shadow_latency_ms: float | None
    live_cost: Decimal  # of the live answers that were shadowed
    spent: Decimal  # the shadow answers' cost, what the budget counts
    budget: Decimal


def shadow_summary(*, arm: Arm) -> ShadowSummary:
    judged = ~Q(preference="")
    row = ShadowAnswer.objects.filter(arm=arm).aggregate(
        answers=Count("pk"), judged=Count("pk", filter=judged),
        shadow=Count("pk", filter=Q(preference=ShadowAnswer.Preference.SHADOW)),
        live=Count("pk", filter=Q(preference=ShadowAnswer.Preference.LIVE)),
        similarity=Avg("similarity"), live_length=Avg("live_length"), shadow_length=Avg("shadow_length"),
        live_latency=Avg("live_latency_ms"), shadow_latency=Avg("shadow_latency_ms"), live_cost=Sum("live_cost"),
        spent=Sum("cost"),
    )
    n = row["judged"]
    return ShadowSummary(
        answers=row["answers"], judged=n, shadow_preferred=row["shadow"] / n if n else None,
        live_preferred=row["live"] / n if n else None, mean_similarity=row["similarity"],
        mean_live_length=row["live_length"], mean_shadow_length=row["shadow_length"],
        mean_live_latency_ms=row["live_latency"], mean_shadow_latency_ms=row["shadow_latency"],
        live_cost=row["live_cost"] or Decimal(0), spent=row["spent"] or Decimal(0), budget=arm.shadow_budget,
    )


def shadow_answers_recent(*, arm: Arm, limit: int = 50) -> QuerySet[ShadowAnswer]:
    return ShadowAnswer.objects.filter(arm=arm).order_by("-created_at", "-pk")[:limit]
