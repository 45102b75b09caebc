"""The content-safety policy an operator sets in admin (chat/safety/policy.py reads it)."""

from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models

__all__ = ["ContentSafetyPolicy"]


class ContentSafetyPolicy(models.Model):
    """One row. A blank field keeps its setting's value (SAFETY_*), so an operator changes the policy
    without a deploy, and clears a field to go back."""

    class InjectionAction(models.TextChoices):
        REFUSE = "refuse", "refuse the question"
        REMINDER = "reminder", "answer, reminding the model of its instructions"
        REVIEW = "review", "hold the answer for a trainer"

    class ModerationAction(models.TextChoices):
        REFUSE = "refuse", "refuse"
        REVIEW = "review", "hold for a trainer"
        FLAG = "flag", "allow, and flag it in the review queue"

    injection = models.CharField(
        "suspected prompt injection", max_length=16, choices=InjectionAction.choices, blank=True,
        help_text="Blank: the SAFETY_INJECTION_POLICY setting.")
    question_moderation = models.CharField(
        "question flagged by moderation", max_length=16, choices=ModerationAction.choices, blank=True,
        help_text="Blank: the SAFETY_QUESTION_MODERATION_POLICY setting.")
    answer_moderation = models.CharField(
        "answer flagged by moderation", max_length=16, choices=ModerationAction.choices, blank=True,
        help_text="Blank: the SAFETY_ANSWER_MODERATION_POLICY setting.")
    injection_threshold = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.01), MaxValueValidator(0.99)],
        help_text="The detector's probability from which a question is a suspected injection; lower catches "
                  "more and alarms more. Blank: SAFETY_INJECTION_THRESHOLD, or the trained one.")
    moderation_threshold = models.FloatField(
        null=True, blank=True, validators=[MinValueValidator(0.01), MaxValueValidator(0.99)],
        help_text="The offline moderation classifier's probability from which text is flagged (OpenAI's "
                  "endpoint decides for itself). Blank: SAFETY_MODERATION_THRESHOLD, or the trained one.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "safety policy"
        verbose_name_plural = "safety policy"

    def __str__(self) -> str:
        return "Safety policy"
