from django.contrib.postgres.fields import ArrayField
from django.db import models
from pgvector.django import VectorField


class AnswerFact(models.Model):
    """One row per answer: monitoring's own copy, so dashboards never read chat's tables."""

    message_id = models.UUIDField(unique=True)
    conversation_id = models.UUIDField(db_index=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    status = models.CharField(max_length=16)  # complete | failed
    error_code = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=100, blank=True)
    prompt_version_id = models.IntegerField(null=True, blank=True)
    reuse = models.CharField(max_length=16, default="none")
    confidence = models.FloatField(null=True, blank=True)
    latency_ms = models.PositiveIntegerField(null=True, blank=True)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    tokens_in = models.PositiveIntegerField(default=0)
    tokens_out = models.PositiveIntegerField(default=0)
    cost = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    cost_avoided = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    offline = models.BooleanField(default=False)
    timings = models.JSONField(default=dict, blank=True)
    # What the answer's confidence was predicted from (and `confidence_source`: model or heuristic); the
    # confidence predictor learns from these, so they are kept as the pipeline saw them.
    features = models.JSONField(default=dict, blank=True)
    # The dimensions the dashboard filters by; empty where the pipeline has none (no experiment, no intent).
    language = models.CharField(max_length=16, blank=True)
    intent = models.CharField(max_length=64, blank=True)
    arm = models.CharField(max_length=100, blank=True, help_text="experiment arm that answered, if any")
    visitor_id = models.CharField(max_length=64, blank=True, help_text="the pseudonymous visitor token's id")
    feedback = models.CharField(max_length=8, blank=True, help_text="the visitor's latest thumbs: up, down or none")
    # What drift detection compares: the question (for a new topic's examples), its embedding, and how close
    # the knowledge base came to it (best cosine similarity of a retrieved chunk; none for a reused answer).
    question = models.TextField(blank=True)
    question_embedding = VectorField(null=True, blank=True)
    embedding_space_id = models.IntegerField(null=True, blank=True, help_text="embeddings compare within one space")
    best_match = models.FloatField(null=True, blank=True)

    class Meta:
        # an experiment's results read one arm's facts since it started, every few seconds
        indexes = [models.Index(fields=["arm", "created_at"], name="answerfact_arm_created")]

    def __str__(self) -> str:
        return f"answer {self.message_id}"


class AnswerRollup(models.Model):
    """Answers aggregated per minute, hour and day and per dimension combination, so the dashboard reads a few
    thousand rows whatever the number of answers. Each fact write upserts its three rows in its own
    transaction; hour and day rows outlive compacted raw facts, minute rows are kept for a week or so.

    Latency and time to first token are kept as counts per bucket of `rollups.LATENCY_EDGES_MS`, so
    percentiles of any range are read from summed histograms."""

    class Granularity(models.TextChoices):
        MINUTE = "minute"
        HOUR = "hour"
        DAY = "day"

    granularity = models.CharField(max_length=8, choices=Granularity.choices)
    bucket = models.DateTimeField(help_text="start of the minute, hour or day (UTC)")
    language = models.CharField(max_length=16, blank=True)
    prompt_version_id = models.IntegerField(default=0, help_text="0: answered without a prompt version")
    arm = models.CharField(max_length=100, blank=True)
    intent = models.CharField(max_length=64, blank=True)
    model = models.CharField(max_length=100, blank=True)
    answers = models.PositiveIntegerField(db_default=0)
    failed = models.PositiveIntegerField(db_default=0)
    reused_approved = models.PositiveIntegerField(db_default=0)
    reused_cache = models.PositiveIntegerField(db_default=0)
    low_confidence = models.PositiveIntegerField(db_default=0)
    confidence_count = models.PositiveIntegerField(db_default=0)
    confidence_sum = models.FloatField(db_default=0)
    tokens_in = models.BigIntegerField(db_default=0)
    tokens_out = models.BigIntegerField(db_default=0)
    cost = models.DecimalField(max_digits=14, decimal_places=6, db_default=0)
    cost_avoided = models.DecimalField(max_digits=14, decimal_places=6, db_default=0)
    thumbs_up = models.IntegerField(db_default=0)
    thumbs_down = models.IntegerField(db_default=0)
    handoffs = models.PositiveIntegerField(db_default=0)
    latency_hist = ArrayField(models.IntegerField(), db_default=[0] * 25)
    ttft_hist = ArrayField(models.IntegerField(), db_default=[0] * 25)

    class Meta:
        constraints = [models.UniqueConstraint(
            fields=["granularity", "bucket", "language", "prompt_version_id", "arm", "intent", "model"],
            name="answer_rollup_unique")]
        indexes = [models.Index(fields=["granularity", "bucket"], name="answer_rollup_range")]

    def __str__(self) -> str:
        return f"{self.granularity} {self.bucket:%Y-%m-%d %H:%M}"


class GaugeSample(models.Model):
    """A level read on a schedule (review queue depth, its oldest wait, an open LLM breaker), for the
    dashboard's history of values that are states rather than sums of answers."""

    name = models.CharField(max_length=64)
    at = models.DateTimeField()
    value = models.FloatField()

    class Meta:
        indexes = [models.Index(fields=["name", "at"], name="gauge_sample_name_at")]

    def __str__(self) -> str:
        return f"{self.name}={self.value} at {self.at:%Y-%m-%d %H:%M}"


class ConfidenceModel(models.Model):
    """A fitted confidence predictor (standardise, then logistic regression), stored as plain numbers
    rather than a pickle so any process can load it safely; the newest row is the one used."""

    trained_at = models.DateTimeField(auto_now_add=True, db_index=True)
    labels = models.PositiveIntegerField(help_text="labelled answers it was trained on")
    positives = models.PositiveIntegerField(help_text="of which approved unedited or thumbs-up")
    feature_names = models.JSONField(default=list)
    coefficients = models.JSONField(default=list)  # one per feature name, on standardised features
    intercept = models.FloatField()
    scaler_mean = models.JSONField(default=list)
    scaler_scale = models.JSONField(default=list)
    brier = models.FloatField(help_text="mean squared error of the out-of-fold probabilities; lower is better")
    ece = models.FloatField(help_text="expected calibration error over 10 equal-width bins")
    # Ten bins of the out-of-fold predictions: {low, high, predicted, observed, count}.
    reliability = models.JSONField(default=list)

    class Meta:
        ordering = ["-trained_at", "-pk"]
        get_latest_by = ["trained_at", "pk"]

    def __str__(self) -> str:
        return f"confidence model of {self.trained_at:%Y-%m-%d %H:%M} ({self.labels} labels)"


class HandoffFact(models.Model):
    """One row per request for a person: monitoring's own copy (reason, the prompt version that answered
    last, when a person first replied, how it ended), so handoff rates per reason and per prompt version
    never read review's or chat's tables."""

    handoff_id = models.BigIntegerField(unique=True)
    conversation_id = models.UUIDField(db_index=True)
    reason = models.CharField(max_length=16)
    prompt_version_id = models.IntegerField(null=True, blank=True, help_text="of the last answer before it")
    status = models.CharField(max_length=16, default="waiting")
    requested_at = models.DateTimeField(db_index=True)
    first_reply_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(null=True, blank=True)
    resolved = models.BooleanField(null=True, blank=True)

    def __str__(self) -> str:
        return f"handoff {self.handoff_id} ({self.status})"


# Drift and alert models live in their own modules; imported here so Django finds them.
from .models_alerts import *  # noqa: E402,F403
from .models_drift import *  # noqa: E402,F403
