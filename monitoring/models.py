from django.db import models


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

    def __str__(self) -> str:
        return f"answer {self.message_id}"


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
