from celery import shared_task

from . import rollups, services
from .confidence import confidence_model_train


@shared_task(ignore_result=True)
def confidence_model_retrain() -> int | None:
    """Refit the confidence predictor once CONFIDENCE_MIN_LABELS answers are judged and new ones came in."""
    model = confidence_model_train(only_if_new_labels=True)
    return model.pk if model else None


# --- rollups and gauges (monitoring/rollups.py) ---


@shared_task(ignore_result=True)
def gauges_sample() -> None:
    """The review queue's depth and oldest wait, once a minute, for the dashboard's history."""
    services.gauges_sample()


@shared_task(ignore_result=True)
def facts_compact() -> dict[str, int]:
    """Raw facts and minute rollups past their retention go; hour rollups stay."""
    return rollups.facts_compact()

# --- drift (monitoring/drift.py) ---


@shared_task(ignore_result=True)
def drift_check() -> int:
    """Judge the drift of the window that just ended (once per window), update new-topic clusters, alert."""
    from .drift import drift_check_run

    return len(drift_check_run())


# --- alerts and anomalies (monitoring/alerts.py, monitoring/anomaly.py) ---

from typing import Any  # noqa: E402

from django.conf import settings  # noqa: E402
from django.utils import timezone  # noqa: E402

from . import alerts, anomaly  # noqa: E402


@shared_task(ignore_result=True)
def alerts_check() -> dict[str, bool]:
    """Raise or clear the alerts of conditions read now: an LLM breaker left open, review items waiting too
    long, today's cost over budget; and deliver alerts whose delivery could not be queued (beat)."""
    for alert_id in alerts.alerts_undelivered(now=timezone.now()):
        alert_deliver.delay(alert_id)
    return alerts.alert_conditions_check()


@shared_task(ignore_result=True)
def anomalies_check() -> list[str]:
    """Score the last complete hour of each rollup series against its hour of the week (beat)."""
    return [metric for metric, score in anomaly.anomalies_check().items() if score is not None]


@shared_task(ignore_result=True)
def alert_deliver(alert_id: int) -> None:
    """A new alert: one task per channel, so that one failing receiver retries alone."""
    for channel_id in alerts.alert_channels_pick(alert_id=alert_id):
        alert_channel_deliver.delay(alert_id, channel_id)


@shared_task(bind=True, ignore_result=True, autoretry_for=(alerts.DeliveryFailed,), retry_backoff=15,
             retry_backoff_max=600, max_retries=settings.ALERT_DELIVERY_RETRIES)
def alert_channel_deliver(self: Any, alert_id: int, channel_id: int) -> None:
    alerts.alert_delivery_attempt(alert_id=alert_id, channel_id=channel_id, attempt=self.request.retries + 1)
