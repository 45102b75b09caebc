from celery import shared_task

from .models import Experiment


@shared_task(ignore_result=True)
def experiments_look() -> None:
    """Every minute: one look per running experiment (guardrails, the primary metric's result)."""
    for experiment_id in Experiment.objects.filter(status=Experiment.Status.RUNNING).values_list("pk", flat=True):
        experiment_look.delay(experiment_id)


@shared_task(ignore_result=True)
def experiment_look(experiment_id: int) -> int:
    from .looks import experiment_look as look

    return len(look(experiment_id=experiment_id))
