from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.forms import ModelForm
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path

from . import services
from .models import ApprovedAnswer, ReviewItem


def _trainer(request: HttpRequest) -> User:
    """The signed-in user admin views run for (admin_view lets no anonymous visitor through)."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


@admin.register(ReviewItem)
class ReviewItemAdmin(admin.ModelAdmin):
    list_display = ["message", "learning_value", "reason", "status", "claimed_by", "created_at"]
    list_filter = ["status", "reason"]
    readonly_fields = ["message", "priority", "reason", "reasons", "feedback_reason", "learning_value", "status",
                       "claimed_by", "claimed_at", "skip_count", "decided_by", "decided_at", "created_at"]
    actions = ["reject_selected"]

    @admin.action(description="Reject: the answers are never reused")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[ReviewItem]) -> None:
        trainer, rejected, refused = _trainer(request), 0, 0
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


@admin.register(ApprovedAnswer)
class ApprovedAnswerAdmin(admin.ModelAdmin):
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
            obj.created_by = _trainer(request)
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
                    data=form.cleaned_data["file"].read(), user=_trainer(request)
                )
            except services.CsvImportError as exc:
                form.add_error("file", str(exc))
            else:
                self.message_user(request, f"{count} approved answers imported.", messages.SUCCESS)
                return redirect("admin:review_approvedanswer_changelist")
        context = {**self.admin_site.each_context(request), "title": "Import approved answers", "form": form,
                   "opts": self.model._meta}
        return TemplateResponse(request, "admin/review/approvedanswer/import.html", context)
