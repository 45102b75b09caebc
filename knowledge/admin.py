from django.contrib import admin

from .models import Chunk, Document, Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "status", "document_count", "chunk_count", "updated_at"]
    list_filter = ["status"]
    search_fields = ["name", "uri"]
    readonly_fields = ["status", "error", "document_count", "chunk_count", "created_at", "updated_at"]


class ChunkInline(admin.TabularInline):
    model = Chunk
    fields = ["ordinal", "token_count", "text"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Document)
class DocumentAdmin(admin.ModelAdmin):
    list_display = ["title", "source", "updated_at"]
    list_filter = ["source"]
    search_fields = ["title", "external_id"]
    readonly_fields = ["content_hash", "created_at", "updated_at"]
    inlines = [ChunkInline]
