"""The visitor's own words before PII masking, encrypted, for the staff allowed to read them."""

from django.db import models

__all__ = ["SealedOriginal"]


class SealedOriginal(models.Model):
    """What a visitor typed, where masking changed it: a question or a feedback comment.

    Everything else (the message, the comment, the model's context, the training export) holds the
    masked text; this Fernet token (chat/safety/pii.py `pii_seal`) opens only in admin, for users with
    the `chat.view_pii` permission. It goes with its message or feedback (erasure, retention)."""

    message = models.OneToOneField("chat.Message", null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="sealed_original")
    feedback = models.OneToOneField("chat.Feedback", null=True, blank=True, on_delete=models.CASCADE,
                                    related_name="sealed_original")
    token = models.TextField(help_text="Fernet token of the original text (key: PII_KEY or derived from SECRET_KEY)")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        permissions = [("view_pii", "Can see the personal data masked in visitors' messages and comments")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(message__isnull=False, feedback__isnull=True)
                | models.Q(message__isnull=True, feedback__isnull=False),
                name="sealedoriginal_one_owner",
            ),
        ]

    def __str__(self) -> str:
        owner = f"message {self.message_id}" if self.message_id else f"feedback {self.feedback_id}"
        return f"original of {owner}"
