"""Alerts, where they are delivered, and every delivery attempt (monitoring/alerts.py)."""

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import validate_email
from django.db import models
from django.db.models import Q

__all__ = ["Alert", "AlertChannel", "AlertDelivery"]


class Alert(models.Model):
    """A condition worth a person's attention. One live (open or acknowledged) row per key: raising the same
    key again while it lasts counts it and refreshes it; resolving it ends it, and the next raise is new."""

    class Severity(models.TextChoices):
        INFO = "info"
        WARNING = "warning"
        CRITICAL = "critical"

    class Status(models.TextChoices):
        OPEN = "open"
        ACKNOWLEDGED = "acknowledged"
        RESOLVED = "resolved"

    class Kind(models.TextChoices):
        DRIFT = "drift"
        ANOMALY = "anomaly"
        BREAKER_OPEN = "breaker_open", "LLM breaker open"
        REVIEW_QUEUE_WAIT = "review_queue_wait", "Review queue waiting"
        COST_BUDGET = "cost_budget", "Daily cost over budget"
        EXPERIMENT_GUARDRAIL = "experiment_guardrail", "Experiment arm paused by a guardrail"
        TEST = "test", "Test (sent from admin)"

    key = models.CharField(max_length=200, help_text="what makes two raises the same alert")
    kind = models.CharField(max_length=32, choices=Kind.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.OPEN)
    title = models.CharField(max_length=300)
    detail = models.TextField(blank=True)
    data = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)  # decimals and times too
    count = models.PositiveIntegerField(default=1, help_text="times raised while it lasted")
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()
    delivered_at = models.DateTimeField(null=True, blank=True, help_text="when it was handed to the channels")
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                        related_name="+")
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="+", help_text="empty when the condition went away by itself")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["key"], condition=~Q(status="resolved"),
                                               name="alert_one_live_per_key")]
        indexes = [models.Index(fields=["status", "-last_seen"], name="alert_status_last_seen")]

    def __str__(self) -> str:
        return f"[{self.severity}] {self.title}"


SEVERITY_RANK = {Alert.Severity.INFO: 0, Alert.Severity.WARNING: 1, Alert.Severity.CRITICAL: 2}


class AlertChannel(models.Model):
    """Where alerts go: e-mail addresses or a webhook, for alerts from a severity up and of some kinds."""

    class Kind(models.TextChoices):
        EMAIL = "email", "E-mail"
        WEBHOOK = "webhook"

    name = models.CharField(max_length=100)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    recipients = models.TextField(blank=True, help_text="e-mail: addresses, one a line or separated by commas")
    url = models.URLField(max_length=500, blank=True, help_text="webhook: receives a JSON POST")
    secret = models.CharField(max_length=200, blank=True, help_text=(
        "webhook: signs each body, header X-Spotter-Signature: sha256=<HMAC-SHA256 of the body>"))
    enabled = models.BooleanField(default=True)
    min_severity = models.CharField(max_length=16, choices=Alert.Severity.choices, default=Alert.Severity.WARNING)
    kinds = ArrayField(models.CharField(max_length=32, choices=Alert.Kind.choices), default=list, blank=True,
                       help_text="only alerts of these kinds; none ticked: every kind")

    def __str__(self) -> str:
        return f"{self.name} ({self.get_kind_display()})"

    def recipient_list(self) -> list[str]:
        return [r.strip() for r in self.recipients.replace("\n", ",").split(",") if r.strip()]

    def accepts(self, alert: Alert) -> bool:
        return (self.enabled and SEVERITY_RANK[Alert.Severity(alert.severity)] >= SEVERITY_RANK[
            Alert.Severity(self.min_severity)] and (not self.kinds or alert.kind in self.kinds))

    def clean(self) -> None:
        if self.kind == self.Kind.EMAIL:
            if not self.recipient_list():
                raise ValidationError({"recipients": "An e-mail channel needs at least one address."})
            try:
                for address in self.recipient_list():
                    validate_email(address)
            except ValidationError as exc:
                raise ValidationError({"recipients": exc.messages}) from exc
        if self.kind == self.Kind.WEBHOOK and not self.url:
            raise ValidationError({"url": "A webhook channel needs a URL."})


class AlertDelivery(models.Model):
    """One attempt to hand an alert to a channel, failed or not."""

    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, null=True, on_delete=models.SET_NULL, related_name="deliveries")
    attempt = models.PositiveSmallIntegerField()
    at = models.DateTimeField()
    ok = models.BooleanField()
    status_code = models.PositiveSmallIntegerField(null=True, blank=True, help_text="webhook: the HTTP answer")
    error = models.TextField(blank=True)
    duration_ms = models.PositiveIntegerField()

    class Meta:
        verbose_name_plural = "alert deliveries"
        indexes = [models.Index(fields=["alert", "at"], name="alert_delivery_alert_at")]

    def __str__(self) -> str:
        return f"attempt {self.attempt} of alert {self.alert_id}: {'ok' if self.ok else 'failed'}"
