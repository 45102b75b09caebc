from django.db import transaction
from django.db.models import Max

from .models import PromptVersion


@transaction.atomic
def prompt_version_create(*, name: str, system_prompt: str, model: str = "", activate: bool = True) -> PromptVersion:
    """A new version of the named prompt; earlier versions stay as they were."""
    latest = PromptVersion.objects.select_for_update().filter(name=name).aggregate(v=Max("version"))["v"] or 0
    if activate:
        PromptVersion.objects.filter(is_active=True).update(is_active=False)
    return PromptVersion.objects.create(
        name=name, version=latest + 1, system_prompt=system_prompt, model=model, is_active=activate
    )


@transaction.atomic
def prompt_version_activate(*, prompt_version: PromptVersion) -> None:
    PromptVersion.objects.filter(is_active=True).exclude(pk=prompt_version.pk).update(is_active=False)
    PromptVersion.objects.filter(pk=prompt_version.pk).update(is_active=True)
