from celery import shared_task

from . import services


@shared_task
def approved_answers_embed() -> int:
    """Embed approved questions missing from the active embedding space (after a model switch)."""
    return services.approved_answers_embed()
