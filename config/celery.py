import logging.config
import os
from collections.abc import Callable
from contextlib import ExitStack
from typing import Any

from celery import Celery
from celery.signals import (
    before_task_publish,
    setup_logging,
    task_failure,
    task_postrun,
    task_prerun,
    task_retry,
    task_success,
)

from .logging import FIELDS, bind, bound_ids, new_request_id

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


@setup_logging.connect
def _log_as_django(**kwargs: Any) -> None:
    """Worker and beat log through settings.LOGGING, as the web process does. A receiver here is what
    keeps Celery from putting its own text handlers on the root and `celery.task` loggers."""
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)


# The log ids of whoever enqueues a task travel in its message headers, so its lines in the worker
# name the request, conversation and answer it serves (config/logging.py).
_task_ids: dict[str, ExitStack] = {}


@before_task_publish.connect
def _ids_to_headers(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    """A task enqueued outside any request (by beat, say) gets a request id of its own, which the
    tasks it enqueues in turn share."""
    if headers is not None:
        headers.update({"request_id": new_request_id(), **bound_ids()})


@task_prerun.connect
def _ids_bind(task_id: str, task: Any, **kwargs: Any) -> None:
    # An eager task has no headers: it runs in its caller's thread, whose ids stay bound.
    ids = {name: getattr(task.request, name, None) for name in FIELDS}
    bound = ExitStack()
    bound.enter_context(bind(**ids))
    _task_ids[task_id] = bound


@task_postrun.connect
def _ids_unbind(task_id: str, **kwargs: Any) -> None:
    bound = _task_ids.pop(task_id, None)
    if bound is not None:
        bound.close()
