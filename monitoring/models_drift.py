"""Drift checks and new-topic clusters (monitoring/drift.py, monitoring/topics.py)."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.db import models
from pgvector.django import VectorField

__all__ = ["DriftCheck", "TopicCluster"]


class DriftCheck(models.Model):
    """One kind of drift judged for one window against its reference window. `statistic` is the window's
    z-score against the reference; `evidence` is the CUSUM of those z-scores up to this window, and the
    check alarms while it is at or above `threshold`."""

    class Kind(models.TextChoices):
        QUESTION = "question", "questions (new and grouped)"
        COVERAGE = "coverage", "coverage (weak knowledge-base match)"
        THUMBS_DOWN = "thumbs_down", "thumbs-down rate"
        APPROVAL = "approval", "review approval rate"
        CONFIDENCE = "confidence", "confidence"

    kind = models.CharField(max_length=16, choices=Kind.choices)
    window_start = models.DateTimeField()
    window_end = models.DateTimeField(db_index=True)
    reference_start = models.DateTimeField()
    reference_end = models.DateTimeField()
    window_count = models.PositiveIntegerField(help_text="answers (or review decisions) in the window")
    reference_count = models.PositiveIntegerField(help_text="answers (or review decisions) in the reference")
    value = models.FloatField(help_text="the window's measure, as a person reads it (a share, a count)")
    reference_value = models.FloatField(help_text="the same measure over the reference window")
    statistic = models.FloatField(help_text="the window's z-score against the reference")
    evidence = models.FloatField(help_text="CUSUM of the z-scores up to this window")
    threshold = models.FloatField(help_text="evidence at which the check alarms")
    alarm = models.BooleanField(default=False)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-window_end", "kind"]
        get_latest_by = "window_end"
        constraints = [models.UniqueConstraint(fields=["kind", "window_start"], name="drift_check_one_per_window")]

    def __str__(self) -> str:
        return f"{self.kind} drift {self.window_start:%Y-%m-%d %H:%M}"


class TopicCluster(models.Model):
    """Recent questions the knowledge base does not cover well, grouped by meaning: a candidate new topic.
    Matched across checks by centroid, so its size per window shows whether it grows."""

    class Status(models.TextChoices):
        EMERGING = "emerging"
        SENT_TO_REVIEW = "sent_to_review", "sent to the review queue"
        KB_GAP = "kb_gap", "knowledge-base gap"
        DISMISSED = "dismissed"

    status = models.CharField(max_length=16, choices=Status.choices, default=Status.EMERGING)
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField(db_index=True)
    size = models.PositiveIntegerField(help_text="questions in it")
    trend = models.JSONField(default=list, blank=True, help_text="[{window_end, size}] per check that saw it")
    examples = models.JSONField(default=list, blank=True, help_text="questions nearest its centre")
    message_ids = ArrayField(models.UUIDField(), default=list, blank=True)
    centroid = VectorField()
    status_changed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="+")
    status_changed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen", "-size"]

    def __str__(self) -> str:
        example = self.examples[0] if self.examples else ""
        return f"topic of {self.size}: {example[:60]}"
