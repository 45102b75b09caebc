from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html, format_html_join
from django.utils.text import Truncator

from chat.safety.pii import pii_mask_structured  # a leaf module: none of chat's models or services
from config.admin import ReadOnlyAdminMixin
from knowledge.links import url_for_storage

from . import selectors, services
from .admin_queue import ReviewPageMixin, reason_labels, trainer_of
from .models import ApprovedAnswer, ReviewDecision, ReviewItem

if TYPE_CHECKING:
    from django.contrib.admin.filters import _ListFilterChoices


class QueueFilter(admin.SimpleListFilter):
    """The open queue (pending, lapsed claims and the trainer's own) unless asked for everything, or
    a status is chosen: a trainer opening the list sees what they can take."""

    title, parameter_name = "queue", "queue"

    def __init__(self, request: HttpRequest, params: dict[str, Any], model: Any, model_admin: Any) -> None:
        super().__init__(request, params, model, model_admin)
        self.user, self.status_chosen = request.user, "status__exact" in request.GET

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("open", "Open: pending, lapsed and mine"), ("all", "Everything")]

    def choices(self, changelist: Any) -> Iterator[_ListFilterChoices]:
        current = self.value() or ("all" if self.status_chosen else "open")
        for value, label in self.lookup_choices:
            query = changelist.get_query_string({self.parameter_name: value})
            yield {"selected": current == value, "query_string": query, "display": label}

    def queryset(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> QuerySet[ReviewItem]:
        if self.value() == "all" or (self.value() is None and self.status_chosen):
            return queryset
        user = self.user if isinstance(self.user, User) else None
        return queryset.filter(pk__in=selectors.review_queue(user=user).values("pk"))


class ReasonFilter(admin.SimpleListFilter):
    title, parameter_name = "reason", "reason"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [(str(code), str(label)) for code, label in ReviewItem.Reason.choices]

    def queryset(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> QuerySet[ReviewItem]:
        return queryset.filter(reasons__contains=[self.value()]) if self.value() else queryset


@admin.register(ReviewItem)
class ReviewItemAdmin(ReviewPageMixin, admin.ModelAdmin):
    list_display = ["question", "answer_seen", "confidence", "why", "value", "state"]
    list_display_links = None  # the question links to the review page, not the raw change form
    list_filter = [QueueFilter, ReasonFilter, ("message__conversation__language", admin.AllValuesFieldListFilter),
                   ("message__prompt_version_id", admin.AllValuesFieldListFilter), "status"]
    list_select_related = ["message__reply_to", "message__conversation", "claimed_by"]
    ordering = ["-learning_value", "created_at"]
    readonly_fields = ["message", "priority", "reason", "reasons", "feedback_reason", "learning_value", "status",
                       "claimed_by", "claimed_at", "skip_count", "decided_by", "decided_at", "created_at",
                       "representative", "represents", "density", "value_terms"]
    exclude = ["question_embedding"]
    actions = ["reject_selected"]

    def get_urls(self) -> list[URLPattern]:
        return self.review_urls() + super().get_urls()

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # answers enter the queue through signals, never by hand

    @admin.display(description="question")
    def question(self, item: ReviewItem) -> str:
        # Stored masked; masked again for rows stored before masking covered them (patterns only: a page of rows).
        asked = pii_mask_structured(item.message.reply_to.text).text if item.message.reply_to else "(no question)"
        url = reverse("admin:review_reviewitem_review", args=[item.pk])
        link = format_html('<a href="{}">{}</a>', url, Truncator(asked).chars(100))
        if item.represents <= 1:
            return link
        return format_html('{}<div class="represents">represents {} questions</div>', link, item.represents)

    @admin.display(description="answer as the visitor saw it")
    def answer_seen(self, item: ReviewItem) -> str:
        return format_html("{}", Truncator(pii_mask_structured(item.message.text).text).chars(120))

    @admin.display(description="confidence", ordering="message__confidence")
    def confidence(self, item: ReviewItem) -> str:
        value = item.message.confidence
        return "—" if value is None else f"{value:.2f}"

    @admin.display(description="learning value", ordering="learning_value")
    def value(self, item: ReviewItem) -> str:
        return f"{item.learning_value:.2f}"

    @admin.display(description="why it is queued")
    def why(self, item: ReviewItem) -> str:
        return format_html_join("", "<div>{}</div>", ((label,) for label in reason_labels(item)))

    @admin.display(description="status", ordering="status")
    def state(self, item: ReviewItem) -> str:
        """The status, and for a claim who holds it and when it lapses (or lapsed: it is takeable)."""
        expires = selectors.claim_expires_at(item=item)
        if expires is None or item.claimed_by is None:
            return item.get_status_display()
        state = "lapsed" if expires < timezone.now() else "until"
        return format_html("claimed by {} ({} {})", item.claimed_by.get_username(), state,
                           date_format(timezone.localtime(expires), "H:i"))

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        return super().changelist_view(request, {"title": "Review queue", **(extra_context or {})})

    @admin.action(description="Reject: the answers are never reused")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        trainer, rejected, refused = trainer_of(request), 0, 0
        for item in queryset:
            try:
                services.review_item_reject(item=item, reviewer=trainer, reason="rejected from the queue list")
                rejected += 1
            except services.ReviewConflict:
                refused += 1
        self.message_user(request, f"{rejected} answers rejected.", messages.SUCCESS)
        if refused:
            self.message_user(request, f"{refused} left alone: claimed by another trainer or already decided.",
                              messages.WARNING)


class ImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header: question,answer[,language,scope,expires_at]")


class ApprovedAnswerForm(forms.ModelForm):
    class Meta:
        model = ApprovedAnswer
        fields = ["question", "answer", "language", "scope", "expires_at", "is_active", "chunk_ids", "sources"]

    def clean_sources(self) -> list[dict[str, Any]]:
        """The sources are sent to visitors as links: each a {"title", "url"} object, the URL http(s) or empty."""
        sources = self.cleaned_data["sources"] or []
        if not isinstance(sources, list) or not all(isinstance(s, dict) for s in sources):
            raise forms.ValidationError('A list of sources, each {"title": "...", "url": "https://..."}.')
        try:
            return [{**source, "url": url_for_storage(str(source.get("url") or ""))} for source in sources]
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc


@admin.register(ApprovedAnswer)
class ApprovedAnswerAdmin(admin.ModelAdmin):
    form = ApprovedAnswerForm
    list_display = ["short_question", "language", "scope", "is_active", "hit_count", "last_hit_at", "expires_at"]
    list_filter = ["is_active", "language", "scope"]
    search_fields = ["question", "answer"]
    fields = ["question", "answer", "language", "scope", "expires_at", "is_active", "chunk_ids", "sources",
              "hit_count", "last_hit_at", "source_message", "created_by", "created_at"]
    readonly_fields = ["hit_count", "last_hit_at", "source_message", "created_by", "created_at"]
    actions = ["deactivate_selected"]

    @admin.display(description="question")
    def short_question(self, answer: ApprovedAnswer) -> str:
        return answer.question[:90]

    def save_model(self, request: HttpRequest, obj: ApprovedAnswer, form: ModelForm, change: bool) -> None:
        if not change:
            obj.created_by = trainer_of(request)
        services.approved_answer_save(answer=obj)  # embeds the question: served from the next question

    @admin.action(description="Deactivate: stop serving the selected answers")
    def deactivate_selected(self, request: HttpRequest, queryset: QuerySet[ApprovedAnswer]) -> None:
        self.message_user(request, f"{queryset.update(is_active=False)} answers deactivated.", messages.SUCCESS)

    def get_urls(self) -> list[URLPattern]:
        urls = [path("import/", self.admin_site.admin_view(self.import_csv), name="review_approvedanswer_import")]
        return urls + super().get_urls()

    def import_csv(self, request: HttpRequest) -> HttpResponse:
        form = ImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            try:
                count = services.approved_answers_import_csv(
                    data=form.cleaned_data["file"].read(), user=trainer_of(request)
                )
            except services.CsvImportError as exc:
                form.add_error("file", str(exc))
            else:
                self.message_user(request, f"{count} approved answers imported.", messages.SUCCESS)
                return redirect("admin:review_approvedanswer_changelist")
        context = {**self.admin_site.each_context(request), "title": "Import approved answers", "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/review/approvedanswer/import.html", context)


@admin.register(ReviewDecision)
class ReviewDecisionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The audit trail: read, never written by hand."""

    list_display = ["item", "action", "user", "at", "note"]
    list_filter = ["action"]
    list_select_related = ["item", "user"]


# Evaluation sets and runs, fine-tuning runs and promotions, handoffs and support hours: their own modules.
from . import admin_evaluation, admin_finetune, admin_handoff  # noqa: E402,F401
