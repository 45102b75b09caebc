from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Max
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import PromptVersion
from .selectors import forget_active_prompt


@transaction.atomic
def prompt_version_create(
    *, name: str, system_prompt: str, model: str = "", activate: bool = True, created_by: User | None = None
) -> PromptVersion:
    """A new version of the named prompt; earlier versions stay as they were."""
    latest = PromptVersion.objects.select_for_update().filter(name=name).aggregate(v=Max("version"))["v"] or 0
    if activate:
        PromptVersion.objects.filter(is_active=True).update(is_active=False)
    return PromptVersion.objects.create(  # the post_save receiver forgets the cached active prompt
        name=name, version=latest + 1, system_prompt=system_prompt, model=model, is_active=activate,
        created_by=created_by,
    )


@transaction.atomic
def prompt_version_activate(*, prompt_version: PromptVersion) -> None:
    PromptVersion.objects.filter(is_active=True).exclude(pk=prompt_version.pk).update(is_active=False)
    PromptVersion.objects.filter(pk=prompt_version.pk).update(is_active=True)
    _forget_active_prompt_now_and_on_commit()


def _forget_active_prompt_now_and_on_commit() -> None:
    """Now for this thread (it sees its own transaction), again on commit for the others (one that
    read in between cached the old version)."""
    forget_active_prompt()
    transaction.on_commit(forget_active_prompt)


@receiver([post_save, post_delete], sender=PromptVersion)
def _prompt_version_saved(sender: type[PromptVersion], **kwargs: object) -> None:
    _forget_active_prompt_now_and_on_commit()
