import os
from collections.abc import Callable
from typing import Any

from celery import Celery
from celery.signals import task_failure, task_retry, task_success

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("spotter")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


def _count(outcome: str) -> Callable[..., None]:
    def counted(sender: Any = None, **kwargs: Any) -> None:
        from monitoring.metrics import TASKS  # after Django is set up in the worker

        name = getattr(sender, "name", None) or getattr(kwargs.get("request"), "task", "") or "unknown"
        TASKS.labels(task=name, outcome=outcome).inc()

    return counted


# Every task's outcome, for /metrics (weak=False: the receivers are closures kept only by the signal).
task_success.connect(_count("success"), weak=False)
task_failure.connect(_count("failure"), weak=False)
task_retry.connect(_count("retry"), weak=False)
