from celery import shared_task

from .confidence import confidence_model_train


@shared_task(ignore_result=True)
def confidence_model_retrain() -> int | None:
    """Refit the confidence predictor once CONFIDENCE_MIN_LABELS answers are judged and new ones came in."""
    model = confidence_model_train(only_if_new_labels=True)
    return model.pk if model else None
