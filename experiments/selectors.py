from dataclasses import dataclass

import cachetools.func

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


# Read for every answer, so kept per process this long: a change made in this process is seen at
# once (see forget_active_prompt), one made in another process within this time.
ACTIVE_PROMPT_CACHE_SECONDS = 2.0


@cachetools.func.ttl_cache(maxsize=1, ttl=ACTIVE_PROMPT_CACHE_SECONDS)
def prompt_for_new_answer() -> PromptChoice:
    active = PromptVersion.objects.filter(is_active=True).first()
    if active is None:
        return PromptChoice(None, DEFAULT_SYSTEM_PROMPT, "")
    return PromptChoice(active.pk, active.system_prompt, active.model, active.name)


def forget_active_prompt() -> None:
    prompt_for_new_answer.cache_clear()
