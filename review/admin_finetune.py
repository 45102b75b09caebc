"""Fine-tuning runs in admin: every run with its scores and outcome, the model served now, and the
one-click buttons (start a run, promote a run that passed the gate, roll back), each confirmed on a page
of its own. A start is handed to a worker; promotions and rollbacks are recorded as promotion rows."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator

from config.admin import ReadOnlyAdminMixin

from . import finetune, tasks
from .admin_queue import trainer_of
from .models import EvaluationRun, FineTuneRun, ModelPromotion

LIST = "admin:review_finetunerun_changelist"


@dataclass(frozen=True)
class Button:
    """One confirmed action: what the confirmation page says, the permission it needs, what it does."""

    title: str
    question: str
    permission: str
    do: Callable[[HttpRequest, FineTuneRun | None], str]  # returns the message shown after it


def _start(request: HttpRequest, run: FineTuneRun | None) -> str:
    """Handed to a worker: the export, uploads and (offline) an evaluation outlast a request. The check
    answers a click while a run is unfinished; the worker's own check, under the lock, a double click."""
    finetune.fine_tune_start_check()
    user_id = trainer_of(request).pk
    transaction.on_commit(lambda: tasks.fine_tune_start_manual.delay(user_id))
    return "Fine-tuning started: the run appears in this list once the approved answers are exported."


def _promote(request: HttpRequest, run: FineTuneRun | None) -> str:
    if run is None:
        raise Http404
    promotion = finetune.fine_tune_promote(run=run, user=trainer_of(request), note="promoted in admin")
    return f"{promotion.model_after} is served from the next answer on."


def _rollback(request: HttpRequest, run: FineTuneRun | None) -> str:
    rollback = finetune.fine_tune_rollback(user=trainer_of(request), note="rolled back in admin")
    return f"Rolled back: {served_label(rollback.model_after)} is served from the next answer on."


BUTTONS = {
    "start": Button("Start fine-tuning now", "Export the approved answers and start a fine-tuning job with the "
                    "provider? A worker does it in the background; the model is evaluated on the held-out set "
                    "when the job ends.",
                    "review.add_finetunerun", _start),
    "promote": Button("Promote", "Serve this fine-tuned model for every prompt version that names no model?",
                      "review.change_finetunerun", _promote),
    "rollback": Button("Roll back", "Go back to the model served before the latest promotion?",
                       "review.change_finetunerun", _rollback),
}


def served_label(model: str) -> str:
    return model or f"{settings.LLM_MODEL} (the configured model)"


def _evaluation_link(run: EvaluationRun | None) -> str:
    if run is None:
        return "—"
    overall = run.scores.get("overall")
    text = f"{overall:.3f}" if isinstance(overall, int | float) else run.get_status_display()
    try:
        url = reverse("admin:review_evaluationrun_change", args=[run.pk])
    except NoReverseMatch:  # evaluation runs not in this admin
        return text
    return format_html('<a href="{}" title="evaluation run {}">{}</a>', url, run.pk, text)


@admin.register(FineTuneRun)
class FineTuneRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """A run starts with the button, which exports and creates the job; its state changes only through the
    buttons' guarded services."""

    list_display = ["created_at", "trigger", "status", "models", "example_counts", "job_status", "baseline",
                    "candidate", "outcome", "buttons"]
    list_filter = ["status", "trigger"]
    list_select_related = ["baseline_run", "candidate_run"]
    change_list_template = "admin/review/finetunerun_change_list.html"

    @admin.display(description="model")
    def models(self, run: FineTuneRun) -> str:
        return format_html("{} → {}", run.base_model, run.fine_tuned_model or "…")

    @admin.display(description="examples")
    def example_counts(self, run: FineTuneRun) -> str:
        return f"{run.examples} + {run.validation_examples} validation"

    @admin.display(description="served model (overall)")
    def baseline(self, run: FineTuneRun) -> str:
        return _evaluation_link(run.baseline_run)

    @admin.display(description="fine-tuned (overall)")
    def candidate(self, run: FineTuneRun) -> str:
        return _evaluation_link(run.candidate_run)

    @admin.display(description="outcome")
    def outcome(self, run: FineTuneRun) -> str:
        return format_html('<span title="{}">{}</span>', run.error, Truncator(run.error).chars(140))

    @admin.display(description="")
    def buttons(self, run: FineTuneRun) -> str:
        if run.status not in finetune.PROMOTABLE or not run.fine_tuned_model:
            return ""
        url = reverse("admin:review_finetunerun_promote", args=[run.pk])
        return format_html('<a class="button" href="{}">Promote</a>', url)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("start/", view(self.start_view), name="review_finetunerun_start"),
            path("rollback/", view(self.rollback_view), name="review_finetunerun_rollback"),
            path("<int:pk>/promote/", view(self.promote_view), name="review_finetunerun_promote"),
            *super().get_urls(),
        ]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        in_force = finetune.promotion_in_force()
        context = {"served_model": served_label(finetune.served_model_now()), "promotion_in_force": in_force,
                   "can_change": request.user.has_perm("review.change_finetunerun"),
                   "can_start": request.user.has_perm("review.add_finetunerun")}
        return super().changelist_view(request, {"title": "Fine-tuning runs", **context, **(extra_context or {})})

    def start_view(self, request: HttpRequest) -> HttpResponse:
        return self._confirmed(request, "start", None)

    def rollback_view(self, request: HttpRequest) -> HttpResponse:
        return self._confirmed(request, "rollback", None)

    def promote_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        run = FineTuneRun.objects.filter(pk=pk).first()
        if run is None:
            raise Http404
        return self._confirmed(request, "promote", run)

    def _confirmed(self, request: HttpRequest, name: str, run: FineTuneRun | None) -> HttpResponse:
        """GET: the confirmation page; POST: the action, then back to the list with what it did."""
        button = BUTTONS[name]
        if not request.user.has_perm(button.permission):
            raise PermissionDenied
        if request.method != "POST":
            return TemplateResponse(request, "admin/review/finetune_confirm.html", {
                **self.admin_site.each_context(request), "opts": self.model._meta, "title": button.title,
                "button": button, "action": name, "run": run, "served_model": served_label(finetune.served_model_now()),
                "in_force": finetune.promotion_in_force(), "llm_offline": not finetune.llm_configured(),
            })
        try:
            self.message_user(request, button.do(request, run), messages.SUCCESS)
        except finetune.FineTuneConflict as exc:
            self.message_user(request, str(exc), messages.ERROR)
        return redirect(LIST)


@admin.register(ModelPromotion)
class ModelPromotionAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The served model's history: written by promotions and rollbacks only."""

    list_display = ["at", "action", "change", "run", "user", "note"]
    list_filter = ["action"]
    list_select_related = ["run", "user"]

    @admin.display(description="served model")
    def change(self, promotion: ModelPromotion) -> str:
        return format_html("{} → {}", served_label(promotion.model_before), served_label(promotion.model_after))
