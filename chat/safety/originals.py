"""The sealed originals of masked visitor text (chat.models_pii.SealedOriginal): kept, and opened only
for staff holding the `chat.view_pii` permission."""

from __future__ import annotations

from django.contrib.auth.models import AnonymousUser, User

from ..models import Feedback, Message, SealedOriginal
from .pii import pii_seal, pii_unseal

VIEW_PII = "chat.view_pii"


def original_keep(*, message_id: object = None, feedback_id: int | None = None, sealed: str = "",
                  original: str = "") -> None:
    """Keep what the visitor typed for a message or feedback, already sealed (`sealed`, from the guard) or
    in plain text (`original`, sealed here); neither: whatever was kept for it goes (nothing was masked)."""
    owner = {"message_id": message_id} if message_id is not None else {"feedback_id": feedback_id}
    token = sealed or (pii_seal(original) if original else "")
    if token:
        SealedOriginal.objects.update_or_create(**owner, defaults={"token": token})
    else:
        SealedOriginal.objects.filter(**owner).delete()


def may_view_pii(user: User | AnonymousUser) -> bool:
    return bool(user.is_active and user.has_perm(VIEW_PII))


def original_of(item: Message | Feedback, *, user: User | AnonymousUser) -> str | None:
    """The text as the visitor typed it, for a user allowed to see it; None otherwise or when nothing was
    masked in it (or the key changed since)."""
    if not may_view_pii(user):
        return None
    sealed = SealedOriginal.objects.filter(
        **({"message": item} if isinstance(item, Message) else {"feedback": item})
    ).values_list("token", flat=True).first()
    return pii_unseal(sealed or "")
