from __future__ import annotations

import difflib
from dataclasses import dataclass

import cachetools.func
from django.conf import settings
from django.db.models import Count, QuerySet

from monitoring.models import AnswerFact

from .models import PRODUCTION, PromptLabel, PromptLabelMove, PromptVersion

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
