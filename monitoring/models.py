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

    def __str__(self) -> str:
        return f"answer {self.message_id}"
