from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from django.utils import timezone
from pgvector.django import VectorField


class ReviewItem(models.Model):
    """An answer a trainer should look at, queued by the signals in `reasons`; the highest learning value
    comes first. The states and who may move an item between them are the services' (review/services.py)."""

    class Status(models.TextChoices):
        PENDING = "pending"
        CLAIMED = "claimed"
        APPROVED = "approved"
        EDITED = "edited", "edited and approved"
        REJECTED = "rejected"
        # Skipped by REVIEW_MAX_SKIPS trainers: out of the queue until a new signal brings it back.
        SKIPPED = "skipped"

    class Reason(models.TextChoices):
        LOW_CONFIDENCE = "low_confidence", "low confidence"
        NO_KB_MATCH = "no_kb_match", "no knowledge-base match"
        THUMBS_DOWN = "thumbs_down", "thumbs down"
        HANDOFF = "handoff", "asked for a human"
        CACHE_NEAR_MISS = "cache_near_miss", "near-miss of the cache"
        REPEATED_QUESTION = "repeated_question", "repeated unanswered question"

    DECIDED = (Status.APPROVED, Status.EDITED, Status.REJECTED)

    message = models.OneToOneField("chat.Message", on_delete=models.CASCADE, related_name="review_item")
    priority = models.FloatField(help_text="the answer's uncertainty: 1 - confidence, never lowered")
    reason = models.CharField(max_length=200, help_text="the latest reason, as a trainer reads it")
    reasons = ArrayField(models.CharField(max_length=32, choices=Reason.choices), default=list, blank=True)
    feedback_reason = models.CharField(max_length=200, blank=True, help_text="the visitor's thumbs-down reason")
    learning_value = models.FloatField(default=0.0, help_text="what a decision teaches (REVIEW_WEIGHTS)")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    claimed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    claimed_at = models.DateTimeField(null=True, blank=True)
    skip_count = models.PositiveIntegerField(default=0)
    decided_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    decided_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-learning_value", "created_at"]
        indexes = [models.Index(fields=["status", "-learning_value"], name="review_queue")]

    def __str__(self) -> str:
        return f"review of {self.message_id} ({self.status})"


class ReviewDecision(models.Model):
    """One state change of a review item: who, when, and the item before and after."""

    class Action(models.TextChoices):
        CLAIM = "claim"
        RELEASE = "release"
        APPROVE = "approve"
        EDIT = "edit", "edit and approve"
        REJECT = "reject"
        SKIP = "skip"
        REOPEN = "reopen"

    item = models.ForeignKey(ReviewItem, on_delete=models.CASCADE, related_name="decisions")
    action = models.CharField(max_length=16, choices=Action.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                             related_name="+", help_text="empty when a visitor's signal reopened the item")
    at = models.DateTimeField(default=timezone.now)
    before = models.JSONField(default=dict, blank=True)
    after = models.JSONField(default=dict, blank=True)
    diff = models.TextField(blank=True, help_text="unified diff of an edited answer")
    note = models.TextField(blank=True, help_text="why: the reject reason, the signal that reopened it")

    class Meta:
        ordering = ["at", "pk"]

    def __str__(self) -> str:
        return f"{self.action} of {self.item_id}"


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
    review_item = models.ForeignKey(ReviewItem, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="approved_answers", help_text="the review it was approved in")
    original_answer = models.TextField(blank=True, help_text="the answer as given, when a trainer edited it")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return self.question[:80]
