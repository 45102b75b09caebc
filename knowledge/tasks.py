import contextlib

from celery import shared_task

from . import services
from .models import EmbeddingSpace
from .parsers import IngestError

SPACE_PURGE_DELAY_S = 60  # longer than any process keeps a replaced space cached (2 s) or a search runs


@shared_task(ignore_result=True)
def ingest_source(source_id: int) -> None:
    with contextlib.suppress(IngestError):  # the source row carries the error for the operator
        services.source_ingest(source_id=source_id)


@shared_task(ignore_result=True)
def embedding_model_sync() -> None:
    """Beat job: build a space for a newly configured embedding model; fill gaps in the active one."""
    building = services.embedding_model_sync()
    if building is not None:
        build_embedding_space.delay(building.pk)
    services.space_fill(space=services.embedding_space_ensure())


@shared_task(ignore_result=True)
def build_embedding_space(space_id: int) -> None:
    for retired in services.space_build(space_id=space_id):
        purge_embedding_space.apply_async((retired.pk,), countdown=SPACE_PURGE_DELAY_S)


@shared_task(ignore_result=True)
def purge_embedding_space(space_id: int) -> None:
    space = EmbeddingSpace.objects.filter(pk=space_id).first()
    if space is not None:
        services.space_retire(space=space)
