from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from pgvector.django import VectorField


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


class ApprovedAnswer(models.Model):
    """A trainer-verified answer, served first when a new question matches its question."""

    question = models.TextField()
    answer = models.TextField()
    chunk_ids = ArrayField(models.BigIntegerField(), default=list, blank=True, help_text="chunks it rests on")
    sources = models.JSONField(default=list, blank=True)
    language = models.CharField(max_length=16, default="en")
    scope = models.CharField(
        max_length=100, blank=True, help_text="a prompt name to serve it only there; empty for every prompt"
    )
    expires_at = models.DateTimeField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    hit_count = models.PositiveIntegerField(default=0)
    last_hit_at = models.DateTimeField(null=True, blank=True)
    # The question embedded in one space; re-embedded when the active space changes.
    space_id = models.IntegerField(null=True, blank=True)
    embedding = VectorField(null=True, blank=True)
    source_message = models.ForeignKey("chat.Message", null=True, blank=True, on_delete=models.SET_NULL,
                                       related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.question[:80]
