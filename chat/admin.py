from django.conf import settings
from django.contrib import admin, messages
from django.db.models import Count
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from knowledge.links import link_html

from .admin_live import LivePageMixin
from .models import CacheCalibration, CacheEntry, Conversation, Feedback, Message, VisitorFact, VisitorProfile
from .reuse.services import entries_block
from .safety.originals import may_view_pii
from .safety.pii import pii_unseal


class TypedOriginalMixin:
    """Stored text is PII-masked; a user with the chat.view_pii permission also sees what the visitor
    typed (decrypted here, for them only), everyone else only the masked text."""

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))  # type: ignore[misc]
        return [*fields, "typed_original"] if may_view_pii(request.user) else fields

    def get_fields(self, request, obj=None):
        fields = list(super().get_fields(request, obj))  # type: ignore[misc]
        if not may_view_pii(request.user):
            return [f for f in fields if f != "typed_original"]
        return fields if "typed_original" in fields else [*fields, "typed_original"]

    @admin.display(description="as typed (personal data)")
    def typed_original(self, item: Message | Feedback) -> str:
        # Shown only to users get_fields let it through for: the permission is checked there, per request.
        sealed = getattr(item, "sealed_original", None) if item.pk else None
        original = pii_unseal(sealed.token) if sealed else None
        return format_html("{}", original) if original is not None else "(nothing was masked)"


class MessageInline(TypedOriginalMixin, admin.TabularInline):
    model = Message
    fk_name = "conversation"
    fields = (
        "sequence", "role", "text", "searched_as", "status", "reuse_link", "model", "confidence", "latency_ms",
        "ttft_ms", "cost", "cost_avoided", "context_tokens", "sources_links",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    ordering = ["sequence"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="sources")
    def sources_links(self, message: Message) -> str:
        cited = [s for s in message.sources if isinstance(s, dict)]
        return format_html_join(", ", "{}", ((link_html(s.get("url"), s.get("title", "")),) for s in cited))

    @admin.display(description="reuse")
    def reuse_link(self, message: Message) -> str:
        return reuse_link(message)

    @admin.display(description="searched as")
    def searched_as(self, message: Message) -> str:
        """A follow-up's standalone form: what reuse and the search read instead of the text."""
        return (message.standalone_query or "—") if message.role == Message.Role.USER else ""


def reuse_link(message: Message) -> str:
    """The reuse kind, linked to the cache entry or approved answer that was served."""
    if message.reused_entry_id:
        url = reverse("admin:chat_cacheentry_change", args=[message.reused_entry_id])
        return format_html('<a href="{}">cache #{}</a> {}', url, message.reused_entry_id,
                           message.reuse_details.get("level", ""))
    if message.approved_answer_id:
        url = reverse("admin:review_approvedanswer_change", args=[message.approved_answer_id])
        return format_html('<a href="{}">approved #{}</a>', url, message.approved_answer_id)
    return message.get_reuse_display()


@admin.register(Conversation)
class ConversationAdmin(LivePageMixin, admin.ModelAdmin):
    list_display = ["id", "visitor_id", "channel", "status", "created_at", "updated_at"]
    list_filter = ["status", "channel", "messages__feedback__value"]
    search_fields = ["id", "visitor_id", "messages__text"]
    readonly_fields = ["id", "visitor_id", "channel", "language", "created_at", "updated_at"]
    inlines = [MessageInline]

    def has_add_permission(self, request) -> bool:
        return False  # conversations start from a visitor, never from admin

    def get_urls(self):
        return self.live_urls() + super().get_urls()


@admin.register(Message)
class MessageAdmin(TypedOriginalMixin, admin.ModelAdmin):
    list_display = ["short_text", "role", "status", "model", "confidence", "latency_ms", "reuse_served", "cost",
                    "cost_avoided", "created_at"]
    list_filter = ["role", "status", "reuse", "model", "feedback__value"]
    search_fields = ["text", "standalone_query", "conversation__id"]
    readonly_fields = [f.name for f in Message._meta.fields]

    @admin.display(description="reuse")
    def reuse_served(self, message: Message) -> str:
        return reuse_link(message)

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="text")
    def short_text(self, message: Message) -> str:
        return format_html("{}", message.text[:80])


@admin.register(Feedback)
class FeedbackAdmin(TypedOriginalMixin, admin.ModelAdmin):
    list_display = ["message", "value", "reason", "created_at"]
    list_filter = ["value", "reason"]
    search_fields = ["reason", "comment", "message__text"]
    readonly_fields = ["message", "value", "reason", "comment", "created_at", "updated_at"]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(CacheEntry)
class CacheEntryAdmin(admin.ModelAdmin):
    list_display = ["short_question", "language", "kb_version", "prompt_version_id", "hits", "last_hit_at",
                    "created_at", "alias_of", "blocked"]
    list_filter = [("blocked_at", admin.EmptyFieldListFilter), "language", "kb_version", "model"]
    search_fields = ["question", "answer"]
    readonly_fields = [*(f.name for f in CacheEntry._meta.fields if f.name != "embedding"), "voted_down_by"]
    exclude = ["embedding"]
    actions = ["block_selected"]
    date_hierarchy = "created_at"

    def has_add_permission(self, request) -> bool:
        return False  # entries come from answers

    @admin.display(description="question")
    def short_question(self, entry: CacheEntry) -> str:
        return format_html("{}", entry.question[:90])

    @admin.display(description="blocked", boolean=True)
    def blocked(self, entry: CacheEntry) -> bool:
        return entry.blocked_at is not None

    @admin.display(description="voted down by")
    def voted_down_by(self, entry: CacheEntry) -> str:
        voters = entry.votes.values("visitor_id").distinct().count()
        return f"{voters} visitor(s); blocked for everyone at {settings.CACHE_BLOCK_DOWNVOTES}"

    @admin.action(description="Invalidate: never serve the selected entries again")
    def block_selected(self, request, queryset):
        count = entries_block(queryset, reason=f"invalidated in admin by {request.user}")
        self.message_user(request, f"{count} entries (with their aliases) will not be served again.",
                          messages.SUCCESS)


@admin.register(CacheCalibration)
class CacheCalibrationAdmin(admin.ModelAdmin):
    list_display = ["created_at", "target_precision", "precision", "hit_rate", "labelled", "source"]
    readonly_fields = [f.name for f in CacheCalibration._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False  # manage.py cache_calibrate computes them


class VisitorFactInline(admin.TabularInline):
    """What the visitor said, as they said it: staff may delete a fact, only the visitor rewrites one."""

    model = VisitorFact
    fields = readonly_fields = ("label", "value", "message_link", "created_at", "updated_at")
    extra = 0

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="picked from")
    def message_link(self, fact: VisitorFact) -> str:
        if fact.message_id is None:
            return "stated in the profile"
        url = reverse("admin:chat_message_change", args=[fact.message_id])
        return format_html('<a href="{}">message</a>', url)


@admin.register(VisitorProfile)
class VisitorProfileAdmin(admin.ModelAdmin):
    list_display = ["visitor_id", "language", "fact_count", "updated_at"]
    search_fields = ["visitor_id", "facts__value"]
    readonly_fields = ["visitor_id", "updated_at"]
    inlines = [VisitorFactInline]

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(fact_count=Count("facts"))

    @admin.display(description="facts", ordering="fact_count")
    def fact_count(self, profile: VisitorProfile) -> int:
        return profile.fact_count  # type: ignore[attr-defined]  # annotated in get_queryset

from . import admin_budgets  # noqa: E402,F401,I001  (Admin → LLM budget)
from . import admin_privacy  # noqa: E402,F401  (Admin → Erasure records, Visitor data)
from .admin_safety import ContentSafetyPolicyAdmin  # noqa: E402,F401  (Admin → Safety policy)
