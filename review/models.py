from django.conf import settings
from django.db import models


class ReviewItem(models.Model):
    """An answer the system was unsure of, waiting for a trainer. Higher priority comes first."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"
        SKIPPED = "skipped"

    message = models.OneToOneField("chat.Message", on_delete=models.CASCADE, related_name="review_item")
    priority = models.FloatField(help_text="1 - confidence, raised by negative feedback")
    reason = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reviewed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-priority", "created_at"]
        indexes = [models.Index(fields=["status", "-priority"], name="review_queue")]

    def __str__(self) -> str:
        return f"review of {self.message_id} ({self.status})"
