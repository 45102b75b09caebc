import functools
import json
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.template.response import TemplateResponse
from django.urls import path
from django.utils.html import format_html

from . import selectors, services
from .api import SearchQuerySerializer, search_from_params, source_file_check
from .links import url_for_storage
from .models import Chunk, Document, EmbeddingSpace, Source
from .parsers import IngestError, mapping_validate
from .selectors import SearchHit
from .tasks import ingest_source


class SourceForm(forms.ModelForm):
    """Upload a file; it is checked here (type, size, readable, mapping) and indexed by a task."""

    upload = forms.FileField(required=False, help_text="text, Markdown, HTML, PDF, CSV or JSON")
    mapping = forms.JSONField(
        required=False, help_text='CSV/JSON only, e.g. {"id": "sku", "title": "name", "body": ["description"], '
        '"url": "https://example.com/p/{sku}", "metadata": ["price"], "tags": ["category"]}'
    )

    class Meta:
        model = Source
        fields = ["name", "upload", "format", "mapping", "language", "tags"]

    def clean_mapping(self):
        mapping = self.cleaned_data.get("mapping")
        if mapping in (None, "", {}):
            return None
        try:
            return mapping_validate(mapping)
        except IngestError as exc:
            raise forms.ValidationError(str(exc)) from exc

    def clean(self):
        data = super().clean() or {}
        upload = data.get("upload")
        if upload is None and not (self.instance.pk and (self.instance.file or self.instance.uri)):
            raise forms.ValidationError("Choose a file to upload.")
        if upload is not None:
            try:
                data["format"] = source_file_check(upload, data.get("format") or "", data.get("mapping"))
            except IngestError as exc:
                raise forms.ValidationError(str(exc)) from exc
        return data


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    form = SourceForm
    list_display = ["name", "format", "status_badge", "progress", "document_count", "chunk_count", "error_short",
                    "ingested_at"]
    list_filter = ["status", "format", "language"]
    search_fields = ["name", "uri"]
    readonly_fields = ["uri", "status", "error", "progress_done", "progress_total", "document_count", "chunk_count",
                       "ingested_at", "created_at", "updated_at"]
    actions = ["reindex"]
    change_list_template = "admin/knowledge/source/change_list.html"

    def save_model(self, request, obj, form, change):
        upload = form.cleaned_data.get("upload")
        source = services.source_upsert(
            name=obj.name, uri="" if upload else obj.uri, fmt=form.cleaned_data.get("format") or obj.format,
            mapping=form.cleaned_data.get("mapping"), language=obj.language, tags=obj.tags, upload=upload,
        )
        obj.pk = source.pk
        transaction.on_commit(lambda: ingest_source.delay(source.pk))
        messages.info(request, f"{source.name}: queued for indexing; this page shows its progress.")

    def delete_model(self, request, obj):
        services.source_delete(source=obj)

    def delete_queryset(self, request, queryset):
        for source in queryset:
            services.source_delete(source=source)

    @admin.action(description="Re-index the selected sources (changed documents only)")
    def reindex(self, request, queryset):
        ids = list(queryset.values_list("pk", flat=True))
        queryset.update(status=Source.Status.QUEUED, error="")
        for pk in ids:
            transaction.on_commit(functools.partial(ingest_source.delay, pk))
        messages.info(request, f"{len(ids)} source(s) queued for re-indexing.")

    @admin.display(description="status", ordering="status")
    def status_badge(self, obj):
        colours = {"ready": "#1e7d32", "failed": "#b3261e", "processing": "#8a5a00", "queued": "#555"}
        return format_html('<b style="color:{}">{}</b>', colours.get(obj.status, "#555"), obj.status)

    @admin.display(description="progress")
    def progress(self, obj):
        return format_html(
            '<progress max="100" value="{}" title="{} of {} documents"></progress> {}%',
            obj.progress_percent, obj.progress_done, obj.progress_total, obj.progress_percent,
        )

    @admin.display(description="error")
    def error_short(self, obj):
        return obj.error[:120]

    def get_urls(self):
        urls = [
            path("retrieval-test/", self.admin_site.admin_view(self.retrieval_test), name="knowledge_retrieval_test"),
        ]
        return urls + super().get_urls()

    def retrieval_test(self, request):
        """Type a question, see the ranked chunks with the scores the assistant sees."""
        query = SearchQuerySerializer(data=_query_params(request)) if request.GET.get("q") else None
        hits: list[SearchHit] = []
        errors: dict[str, Any] = {}
        if query is not None:
            if query.is_valid():
                hits = search_from_params(query.validated_data)
            else:
                errors = query.errors
        context = {
            **self.admin_site.each_context(request),
            "title": "Retrieval test",
            "opts": self.model._meta,
            "hits": hits,
            "errors": json.dumps(errors) if errors else "",
            "params": request.GET,
            "sources": Source.objects.order_by("name"),
            "selected_sources": [int(s) for s in request.GET.getlist("source") if s.isdigit()],
            "space": selectors.embedding_space_active(),
            "searched": query is not None,
        }
        return TemplateResponse(request, "admin/knowledge/retrieval_test.html", context)


def _query_params(request) -> dict:
    data = {key: request.GET.get(key) for key in ("q", "k", "mode", "language", "min_score") if request.GET.get(key)}
    data["source"] = [s for s in request.GET.getlist("source") if s]
    data["tag"] = [t.strip() for t in request.GET.get("tags", "").split(",") if t.strip()]
    data["diverse"] = bool(request.GET.get("diverse"))
    return data


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ("ordinal", "heading", "token_count", "text")
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class DocumentForm(forms.ModelForm):
    class Meta:
        model = Document
        fields = ["source", "external_id", "title", "url", "content", "metadata", "language", "tags"]

    def clean_url(self) -> str:
        try:
            return url_for_storage(self.cleaned_data.get("url") or "")
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    form = DocumentForm
    list_display = ["title", "source", "language", "updated_at"]
    list_filter = ["source", "language"]
    search_fields = ["title", "external_id"]
    readonly_fields = ["content_hash", "created_at", "updated_at"]
    inlines = [ChunkInline]


@admin.register(EmbeddingSpace)
class EmbeddingSpaceAdmin(admin.ModelAdmin):
    """Which embedding model search reads, and the progress of a new one being built beside it."""

    list_display = ["__str__", "status", "progress_done", "progress_total", "created_at", "activated_at"]
    readonly_fields = [f.name for f in EmbeddingSpace._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # set EMBEDDING_BACKEND/EMBEDDING_MODEL; the beat job builds the new space
