"""Knowledge API: search (for integrators and benchmarks) and sources (for operators)."""

import json

from django.db import transaction
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, serializers, status, viewsets
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import action
from rest_framework.parsers import FormParser, JSONParser, MultiPartParser
from rest_framework.permissions import AllowAny, DjangoModelPermissions
from rest_framework.response import Response
from rest_framework.views import APIView

from . import services
from .auth import LockoutBasicAuthentication
from .embeddings import NoActiveSpace, QueryVector, embed_query
from .models import Source
from .parsers import IngestError, check_size, detect_format, mapping_validate, parse_file
from .selectors import SearchFilters, search
from .tasks import ingest_source


class SearchHitSerializer(serializers.Serializer):
    chunk_id = serializers.IntegerField()
    document_id = serializers.IntegerField()
    source_id = serializers.IntegerField()
    title = serializers.CharField()
    heading = serializers.CharField()
    url = serializers.CharField()
    text = serializers.CharField()
    score = serializers.FloatField(help_text="fused score, 0..1")
    dense_score = serializers.FloatField(help_text="cosine similarity of the embeddings")
    lexical_score = serializers.FloatField(help_text="full-text rank: IDF-weighted ts_rank per query word (BM25-like)")


class SearchQuerySerializer(serializers.Serializer):
    q = serializers.CharField(max_length=4000)
    k = serializers.IntegerField(min_value=1, max_value=50, default=5)
    mode = serializers.ChoiceField(["hybrid", "dense", "lexical"], default="hybrid")
    # The query parameter is named `source`, like DRF's own Field.source attribute.
    source = serializers.ListField(  # type: ignore[assignment]
        child=serializers.IntegerField(), required=False, default=list)
    tag = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    language = serializers.CharField(max_length=16, required=False)
    min_score = serializers.FloatField(min_value=0, max_value=1, required=False)
    diverse = serializers.BooleanField(default=False, help_text="re-rank for variety (MMR)")


def search_from_params(params) -> list:
    """Run a search from validated SearchQuerySerializer data (the API and the admin test page)."""
    filters = SearchFilters(
        source_ids=tuple(params["source"]), tags=tuple(params["tag"]), language=params.get("language") or None
    )
    vector = _query_vector(params["q"]) if params["mode"] != "lexical" else None
    return search(
        query=params["q"], vector=vector, k=params["k"], filters=filters, min_score=params.get("min_score"),
        diverse=params["diverse"], mode=params["mode"],
    )


def _query_vector(query: str) -> QueryVector | None:
    try:
        return embed_query(query)
    except NoActiveSpace:  # nothing ingested yet: nothing to find either way
        return None


class KnowledgeSearchView(APIView):
    """Top chunks for a query, as the assistant retrieves them, with their three scores."""

    permission_classes = [AllowAny]

    @extend_schema(parameters=[SearchQuerySerializer], responses=SearchHitSerializer(many=True))
    def get(self, request):
        query = SearchQuerySerializer(data=_multi(request.query_params, ("source", "tag")))
        query.is_valid(raise_exception=True)
        return Response(SearchHitSerializer(search_from_params(query.validated_data), many=True).data)


def _multi(params, list_fields):
    data = {key: params.get(key) for key in params}
    for name in list_fields:
        data[name] = params.getlist(name)
    return data


# --- sources --------------------------------------------------------------------------------------


class SourceSerializer(serializers.ModelSerializer):
    progress_percent = serializers.IntegerField(read_only=True)

    class Meta:
        model = Source
        fields = [
            "id", "name", "uri", "format", "mapping", "language", "tags", "status", "error", "progress_done",
            "progress_total", "progress_percent", "document_count", "chunk_count", "ingested_at", "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class SourceUploadSerializer(serializers.Serializer):
    file = serializers.FileField(allow_empty_file=True)  # refused below, with the source row marked
    name = serializers.CharField(max_length=200, required=False, help_text="default: the file name")
    format = serializers.ChoiceField(Source.Format.choices, required=False, help_text="default: from the file")
    mapping = serializers.JSONField(required=False, help_text="CSV/JSON: the field mapping")
    language = serializers.CharField(max_length=16, required=False)
    tags = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)

    def validate_mapping(self, value):
        if isinstance(value, str):  # multipart sends it as text
            try:
                value = json.loads(value)
            except json.JSONDecodeError as exc:
                raise serializers.ValidationError(f"not valid JSON: {exc}") from exc
        try:
            return mapping_validate(value)
        except IngestError as exc:
            raise serializers.ValidationError(str(exc)) from exc


class SourceViewSet(
    mixins.ListModelMixin, mixins.RetrieveModelMixin, mixins.DestroyModelMixin, viewsets.GenericViewSet
):
    """Knowledge sources. Upload a file to add or update one (same name = same source): it is
    checked at once (type, size, readable, mapping) and indexed by a Celery task; poll its status."""

    queryset = Source.objects.order_by("name")
    serializer_class = SourceSerializer
    authentication_classes = [SessionAuthentication, LockoutBasicAuthentication]
    permission_classes = [DjangoModelPermissions]
    parser_classes = [MultiPartParser, FormParser, JSONParser]

    @extend_schema(request={"multipart/form-data": SourceUploadSerializer}, responses={202: SourceSerializer})
    def create(self, request):
        upload = SourceUploadSerializer(data=request.data)
        upload.is_valid(raise_exception=True)
        data = upload.validated_data
        file = data["file"]
        name = data.get("name") or file.name
        try:
            fmt = source_file_check(file, data.get("format", ""), data.get("mapping"))
        except IngestError as exc:
            failed = _failed_source(name, str(exc))
            body = {"code": "ingest_failed", "message": str(exc), "source": SourceSerializer(failed).data}
            return Response(body, status=status.HTTP_400_BAD_REQUEST)
        source = services.source_upsert(
            name=name, fmt=fmt, mapping=data.get("mapping"), language=data.get("language", ""), tags=data["tags"],
            upload=file,
        )
        transaction.on_commit(lambda: ingest_source.delay(source.pk))
        return Response(SourceSerializer(source).data, status=status.HTTP_202_ACCEPTED)

    def perform_destroy(self, instance):
        services.source_delete(source=instance)

    @extend_schema(request=None, responses={202: SourceSerializer})
    @action(detail=True, methods=["post"])
    def reindex(self, request, pk=None):
        """Read the source's file again and index what changed."""
        source = self.get_object()
        Source.objects.filter(pk=source.pk).update(status=Source.Status.QUEUED, error="")
        transaction.on_commit(lambda: ingest_source.delay(source.pk))
        source.refresh_from_db()
        return Response(SourceSerializer(source).data, status=status.HTTP_202_ACCEPTED)


def source_file_check(file, fmt: str, mapping) -> str:
    """Everything about an upload that can be wrong, found before it is stored: type, size,
    readability and the mapping. Parsing is far cheaper than embedding, so it runs here too."""
    check_size(file.name, file.size)  # before reading a huge upload into memory
    file.seek(0)
    data = file.read()
    file.seek(0)
    fmt = fmt or detect_format(file.name, data[:8])
    parse_file(filename=file.name, data=data, fmt=fmt, mapping=mapping)
    return fmt


def _failed_source(name: str, error: str) -> Source:
    """The source row shows the error too; a known source's index stays as it was."""
    source, _ = Source.objects.get_or_create(name=name, defaults={"status": Source.Status.FAILED})
    services.source_fail(source_id=source.pk, error=error)
    source.refresh_from_db()
    return source
