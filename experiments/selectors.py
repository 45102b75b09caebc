from dataclasses import dataclass

from .models import PromptVersion

# Used until an operator creates a prompt version; deliberately domain-free.
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


def prompt_for_new_answer() -> PromptChoice:
    active = PromptVersion.objects.filter(is_active=True).first()
    if active is None:
        return PromptChoice(None, DEFAULT_SYSTEM_PROMPT, "")
    return PromptChoice(active.pk, active.system_prompt, active.model, active.name)
