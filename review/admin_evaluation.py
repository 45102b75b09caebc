"""Evaluation in admin: sets with their cases (imported from CSV or JSONL), a form that starts runs, the
runs' list with live progress bars, and runs compared side by side, case by case."""

from __future__ import annotations

from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Q, QuerySet
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.html import format_html
from django.utils.text import Truncator
from django.views.decorators.http import require_POST

from config.admin import NoAddOrChangeAdminMixin
from experiments.models import PromptVersion

from . import evaluation, tasks
from .admin_queue import trainer_of
from .models import EvaluationCase, EvaluationRun, EvaluationSet, FineTuneRun

LIVE = evaluation.LIVE


def _ids(request: HttpRequest) -> list[int]:
    return [int(i) for i in request.GET.get("ids", "").split(",") if i.strip().isdigit()]


def _score(value: object) -> str:
    return f"{value:.2f}" if isinstance(value, int | float) else "—"


def progress_bar(run: EvaluationRun) -> str:
    """A bar that the page's script moves while the run works (see evaluation_progress_script.html)."""
    return format_html(
        '<progress data-run="{}" data-status="{}" max="{}" value="{}"></progress> '
        '<span data-run-count="{}">{} / {}</span> <span data-run-status="{}">{}</span>',
        run.pk, run.status, run.total or 1, run.done, run.pk, run.done, run.total, run.pk, run.status,
    )


# --- sets and cases -------------------------------------------------------------------------------------


class CasesImportForm(forms.Form):
    file = forms.FileField(help_text="CSV with a header question,reference[,language], or JSONL with "
                                     "question and reference (or reference_answer) on each line")


class RunForm(forms.Form):
    model = forms.CharField(required=False, max_length=100, help_text="Empty: the model visitors are answered with.")
    prompt_version = forms.ModelChoiceField(queryset=PromptVersion.objects.all(), required=False,
                                            empty_label="the active version")
    judge = forms.BooleanField(required=False, initial=True, label="Judge the answers with the LLM")
    judge_model = forms.CharField(required=False, max_length=100,
                                  help_text="Empty: EVALUATION_JUDGE_MODEL, else the configured LLM_MODEL.")


@admin.register(EvaluationCase)
class EvaluationCaseAdmin(admin.ModelAdmin):
    list_display = ["short_question", "short_reference", "language", "evaluation_set", "approved_answer"]
    list_filter = ["evaluation_set", "language"]
    list_select_related = ["evaluation_set", "approved_answer"]
    search_fields = ["question", "reference"]
    raw_id_fields = ["approved_answer"]

    @admin.display(description="question")
    def short_question(self, case: EvaluationCase) -> str:
        return Truncator(case.question).chars(100)

    @admin.display(description="reference answer")
    def short_reference(self, case: EvaluationCase) -> str:
        return Truncator(case.reference).chars(140)


@admin.register(EvaluationSet)
class EvaluationSetAdmin(admin.ModelAdmin):
    list_display = ["name", "from_approved", "case_list", "run_list", "start"]
    fields = ["name", "description", "from_approved", "created_by", "created_at"]
    readonly_fields = ["from_approved", "created_by", "created_at"]
    actions = ["run_selected"]
    change_list_template = "admin/review/evaluation_sets.html"

    def get_queryset(self, request: HttpRequest) -> QuerySet[EvaluationSet]:
        return super().get_queryset(request).annotate(case_count=Count("cases", distinct=True),
                                                      run_count=Count("runs", distinct=True))

    def save_model(self, request: HttpRequest, obj: EvaluationSet, form: forms.ModelForm, change: bool) -> None:
        if not change:
            obj.created_by = trainer_of(request)
        super().save_model(request, obj, form, change)

    @admin.display(description="cases", ordering="case_count")
    def case_list(self, evaluation_set: Any) -> str:
        url = reverse("admin:review_evaluationcase_changelist") + f"?evaluation_set__id__exact={evaluation_set.pk}"
        imported = reverse("admin:review_evaluationset_import", args=[evaluation_set.pk])
        return format_html('<a href="{}">{} cases</a> · <a href="{}">import</a>', url, evaluation_set.case_count,
                           imported)

    @admin.display(description="runs", ordering="run_count")
    def run_list(self, evaluation_set: Any) -> str:
        url = reverse("admin:review_evaluationrun_changelist") + f"?evaluation_set__id__exact={evaluation_set.pk}"
        return format_html('<a href="{}">{} runs</a>', url, evaluation_set.run_count)

    @admin.display(description="")
    def start(self, evaluation_set: EvaluationSet) -> str:
        return format_html('<a class="button" href="{}?ids={}">Run evaluation</a>',
                           reverse("admin:review_evaluationset_run"), evaluation_set.pk)

    @admin.action(description="Run an evaluation on the selected sets")
    def run_selected(self, request: HttpRequest, queryset: QuerySet[EvaluationSet]) -> HttpResponse:
        ids = ",".join(str(pk) for pk in queryset.values_list("pk", flat=True))
        return redirect(reverse("admin:review_evaluationset_run") + f"?ids={ids}")

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/import/", view(self.import_cases), name="review_evaluationset_import"),
            path("run/", view(self.run_form), name="review_evaluationset_run"),
            path("held-out/", view(require_POST(self.held_out)), name="review_evaluationset_held_out"),
            *super().get_urls(),
        ]

    def import_cases(self, request: HttpRequest, pk: int) -> HttpResponse:
        evaluation_set = get_object_or_404(EvaluationSet, pk=pk)
        if not self.has_change_permission(request, evaluation_set):
            raise PermissionDenied
        form = CasesImportForm(request.POST or None, request.FILES or None)
        if request.method == "POST" and form.is_valid():
            upload = form.cleaned_data["file"]
            try:
                count = evaluation.evaluation_cases_import(evaluation_set=evaluation_set, data=upload.read(),
                                                           filename=upload.name or "")
            except evaluation.EvaluationImportError as exc:
                form.add_error("file", str(exc))
            else:
                self.message_user(request, f"{count} cases imported into {evaluation_set}.", messages.SUCCESS)
                return redirect("admin:review_evaluationset_changelist")
        return TemplateResponse(request, "admin/review/evaluation_import.html", {
            **self.admin_site.each_context(request), "title": f"Import cases into {evaluation_set}", "form": form,
            "opts": self.model._meta, "evaluation_set": evaluation_set,
            "default_language": settings.CHAT_DEFAULT_LANGUAGE,
        })

    def run_form(self, request: HttpRequest) -> HttpResponse:
        if not request.user.has_perm("review.add_evaluationrun"):
            raise PermissionDenied
        sets = list(EvaluationSet.objects.filter(pk__in=_ids(request)).annotate(case_count=Count("cases")))
        if not sets:
            raise Http404("no evaluation set chosen")
        form = RunForm(request.POST or None)
        if request.method == "POST" and form.is_valid():
            runs = [self._start(request, evaluation_set, form.cleaned_data) for evaluation_set in sets]
            self.message_user(request, f"{len(runs)} evaluation runs queued.", messages.SUCCESS)
            return redirect(compare_url(runs))
        return TemplateResponse(request, "admin/review/evaluation_run_form.html", {
            **self.admin_site.each_context(request), "title": "Run an evaluation", "form": form, "sets": sets,
            "opts": self.model._meta,
        })

    def _start(self, request: HttpRequest, evaluation_set: EvaluationSet, data: dict[str, Any]) -> EvaluationRun:
        run = evaluation.evaluation_run_create(
            evaluation_set=evaluation_set, model=data["model"], prompt_version=data["prompt_version"],
            judge_model=(data["judge_model"] or None) if data["judge"] else "", user=trainer_of(request),
        )
        transaction.on_commit(lambda: tasks.evaluation_run_execute.delay(run.pk))
        return run

    def held_out(self, request: HttpRequest) -> HttpResponse:
        if not self.has_change_permission(request):
            raise PermissionDenied
        evaluation_set = evaluation.held_out_set()
        self.message_user(request, f"{evaluation_set}: {evaluation_set.cases.count()} cases, as the training "
                                   "export holds them out.", messages.SUCCESS)
        return redirect("admin:review_evaluationset_changelist")


# --- runs -----------------------------------------------------------------------------------------------


def compare_url(runs: list[EvaluationRun]) -> str:
    return reverse("admin:review_evaluationrun_compare") + "?ids=" + ",".join(str(run.pk) for run in runs)


@admin.register(EvaluationRun)
class EvaluationRunAdmin(NoAddOrChangeAdminMixin, admin.ModelAdmin):
    """Runs start from an evaluation set's "Run evaluation", and what a run measured is never edited."""

    list_display = ["run", "evaluation_set", "model_name", "prompt_version", "progress", "similarity", "faithfulness",
                    "judge", "overall", "failed", "created_at"]
    list_display_links = None  # a run's page is its comparison page, linked from the first column
    list_filter = ["status", "evaluation_set", "model", "prompt_version"]
    list_select_related = ["evaluation_set", "prompt_version"]
    readonly_fields = ["evaluation_set", "model", "prompt_version", "judge_model", "status", "total", "done", "scores",
                       "error", "created_by", "created_at", "started_at", "finished_at"]
    actions = ["compare_selected"]
    change_list_template = "admin/review/evaluation_runs.html"

    def has_delete_permission(self, request: HttpRequest, obj: EvaluationRun | None = None) -> bool:
        """Not a run that is queued or running (its worker writes to it), nor one a fine-tuning run's gate
        compared (the record of why a model was or was not served). Admin asks per run for a bulk delete
        and for the runs a deleted set takes with it."""
        if obj is not None and (obj.status in LIVE or FineTuneRun.objects.filter(
                Q(baseline_run=obj) | Q(candidate_run=obj)).exists()):
            return False
        return super().has_delete_permission(request, obj)

    @admin.display(description="run", ordering="created_at")
    def run(self, run: EvaluationRun) -> str:
        return format_html('<a href="{}">Run {}</a>', compare_url([run]), run.pk)

    @admin.display(description="model", ordering="model")
    def model_name(self, run: EvaluationRun) -> str:
        return run.model or "the served model"

    @admin.display(description="progress", ordering="status")
    def progress(self, run: EvaluationRun) -> str:
        return progress_bar(run)

    @admin.display(description="similarity")
    def similarity(self, run: EvaluationRun) -> str:
        return _score(run.scores.get("similarity"))

    @admin.display(description="faithfulness")
    def faithfulness(self, run: EvaluationRun) -> str:
        return _score(run.scores.get("faithfulness"))

    @admin.display(description="judge")
    def judge(self, run: EvaluationRun) -> str:
        return _score(run.scores.get("judge"))

    @admin.display(description="overall")
    def overall(self, run: EvaluationRun) -> str:
        return _score(run.scores.get("overall"))

    @admin.display(description="failed cases")
    def failed(self, run: EvaluationRun) -> str:
        return str(run.scores.get("failed", "—"))

    @admin.action(description="Compare the selected runs side by side")
    def compare_selected(self, request: HttpRequest, queryset: QuerySet[EvaluationRun]) -> HttpResponse:
        return redirect(compare_url(list(queryset)))

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("compare/", view(self.compare), name="review_evaluationrun_compare"),
            path("progress/", view(self.progress_json), name="review_evaluationrun_progress"),
            *super().get_urls(),
        ]

    def compare(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        runs = EvaluationRun.objects.filter(pk__in=_ids(request)).select_related("evaluation_set", "prompt_version")
        comparison = evaluation.evaluation_runs_compare(runs=runs)
        if not comparison.runs:
            raise Http404("no evaluation run chosen")
        return TemplateResponse(request, "admin/review/evaluation_compare.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "comparison": comparison,
            "title": "Evaluation runs side by side" if len(comparison.runs) > 1 else f"Run {comparison.runs[0].pk}",
            "columns": [(run, progress_bar(run)) for run in comparison.runs],
            "live": any(run.status in LIVE for run in comparison.runs),
        })

    def progress_json(self, request: HttpRequest) -> JsonResponse:
        if not self.has_view_permission(request):
            raise PermissionDenied
        return JsonResponse({"runs": evaluation.evaluation_runs_progress(run_ids=_ids(request))})
