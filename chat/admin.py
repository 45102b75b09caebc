from django.contrib import admin
from django.utils.html import format_html, format_html_join

from .models import Conversation, Feedback, Message


class MessageInline(admin.TabularInline):
    model = Message
    fk_name = "conversation"
    fields = [
        "sequence", "role", "text", "status", "model", "confidence", "latency_ms", "ttft_ms", "cost", "sources_links",
    ]
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["sequence"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="sources")
    def sources_links(self, message: Message) -> str:
        return format_html_join(
            ", ", '<a href="{}">{}</a>', ((s.get("url", ""), s.get("title", "")) for s in message.sources)
        )


@admin.register(Conversation)
class ConversationAdmin(admin.ModelAdmin):
    list_display = ["id", "visitor_id", "channel", "status", "created_at", "updated_at"]
    list_filter = ["status", "channel", "messages__feedback__value"]
    search_fields = ["id", "visitor_id", "messages__text"]
    readonly_fields = ["id", "visitor_id", "channel", "language", "created_at", "updated_at"]
    inlines = [MessageInline]

    def has_add_permission(self, request) -> bool:
        return False  # conversations start from a visitor, never from admin


@admin.register(Message)
class MessageAdmin(admin.ModelAdmin):
    list_display = ["short_text", "role", "status", "model", "confidence", "latency_ms", "reuse", "created_at"]
    list_filter = ["role", "status", "reuse", "model", "feedback__value"]
    search_fields = ["text", "conversation__id"]
    readonly_fields = [f.name for f in Message._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="text")
    def short_text(self, message: Message) -> str:
        return format_html("{}", message.text[:80])


@admin.register(Feedback)
class FeedbackAdmin(admin.ModelAdmin):
    list_display = ["message", "value", "reason", "created_at"]
    list_filter = ["value", "reason"]
    search_fields = ["reason", "comment", "message__text"]
    readonly_fields = ["message", "value", "reason", "comment", "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False
