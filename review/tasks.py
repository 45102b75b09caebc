from celery import shared_task
from django.conf import settings

from . import evaluation, finetune, learning, notify, services


@shared_task
def approved_answers_embed() -> int:
    """Embed approved questions missing from the active embedding space (after a model switch)."""
    return services.approved_answers_embed()


@shared_task
def learning_values_recompute() -> int:
    """Density, grouping and learning value of the open queue (beat, and after each new signal)."""
    return learning.learning_values_recompute()


@shared_task
def evaluation_run_execute(run_id: int) -> None:
    evaluation.evaluation_run_execute(run_id=run_id)


@shared_task
def fine_tune_start_when_due() -> int | None:
    """Start a fine-tuning run when enough new examples exist or thumbs-down rose (beat)."""
    run = finetune.fine_tune_start_when_due()
    return run.pk if run else None


@shared_task
def fine_tune_runs_follow() -> int:
    """Poll the provider's jobs of unfinished runs; evaluate, gate and promote the finished ones (beat)."""
    return finetune.fine_tune_runs_follow()


@shared_task
def fine_tune_start_manual(user_id: int | None = None) -> int | None:
    """A fine-tuning run a staff member started from admin (the export and uploads take a while)."""
    try:
        return finetune.fine_tune_start_manual(user_id=user_id).pk
    except finetune.FineTuneConflict:  # a second click queued before the first run existed
        return None


@shared_task
def evaluation_runs_fail_stale() -> int:
    """Evaluation runs left running by a worker that died (beat)."""
    return evaluation.evaluation_runs_fail_stale()


@shared_task
def handoff_notify(handoff_id: int) -> None:
    """Tell staff a visitor waits for a person: the webhook in a task of its own (queued first, so that a
    failing mail server does not stop it), then the e-mail."""
    if notify.webhook_configured():
        handoff_webhook.delay(handoff_id)
    notify.handoff_email(handoff_id=handoff_id)


@shared_task(autoretry_for=(notify.WebhookFailed,), retry_backoff=2, retry_backoff_max=600,
             max_retries=settings.HANDOFF_WEBHOOK_RETRIES)
def handoff_webhook(handoff_id: int) -> None:
    notify.handoff_webhook_post(handoff_id=handoff_id)
