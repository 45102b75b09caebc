from celery import shared_task

from . import evaluation, finetune, learning, services


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
