from datetime import timedelta

from celery import shared_task
from django.conf import settings

from . import services


@shared_task(ignore_result=True)
def fail_stale_streaming_answers() -> int:
    return services.stale_streaming_fail(older_than=timedelta(seconds=settings.CHAT_STALE_STREAM_SECONDS))
