"""Experiments in admin: set up arms, start/pause/stop in one click, watch the results live (the page
polls `results/`), pause an arm or declare a winner (which deploys its prompt version), and compare a
shadow arm's answers with the live ones (`arm/<id>/shadow/`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django import forms
from django.conf import settings
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, JsonResponse
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.views.decorators.http import require_GET, require_POST

from .gate import GateRefused
from .models import Arm, Experiment
from .results import experiment_baseline, experiment_results
from .selectors import shadow_answers_recent, shadow_arms_of, shadow_summary
from .services import (
    arm_pause,
    arm_resume,
    experiment_declare_winner,
    experiment_pause,
    experiment_start,
    experiment_stop,
)

# Fixed once the experiment has started: changing them would void what was measured so far.
LOCKED_ONCE_STARTED = ["salt", "primary_metric", "min_effect"]


ARM_FIELDS = ["name", "prompt_version", "model", "weight", "is_control", "share_reuse", "generation", "shadow",
              "shadow_share", "shadow_budget", "status", "pause_reason"]


class ExperimentForm(forms.ModelForm):
    guardrails = forms.MultipleChoiceField(
        choices=Experiment.Guardrail.choices, widget=forms.CheckboxSelectMultiple, required=False,
        help_text="an arm significantly worse than control on one of these is paused automatically")

    class Meta:
        model = Experiment
        fields = ["name", "description", "audience_share", "languages", "primary_metric", "min_effect",
                  "guardrails", "salt"]


class ArmInline(admin.TabularInline):
    model = Arm
    extra = 0
    min_num = 2
    fields = tuple(ARM_FIELDS)
    readonly_fields = ["status", "pause_reason"]
    fk_name = "experiment"

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> list[str]:
        if obj is not None and obj.status != Experiment.Status.DRAFT:
            return list(ARM_FIELDS)  # arms are what is being compared: fixed while it runs
        return list(self.readonly_fields)

    def has_add_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return (obj is None or obj.status == Experiment.Status.DRAFT) and super().has_add_permission(request, obj)

    def has_delete_permission(self, request: HttpRequest, obj: Experiment | None = None) -> bool:
        return (obj is None or obj.status == Experiment.Status.DRAFT) and super().has_delete_permission(request, obj)


@admin.register(Experiment)
class ExperimentAdmin(admin.ModelAdmin):
    form = ExperimentForm
    inlines = [ArmInline]
    list_display = ["name", "status", "primary_metric", "audience_share", "started_at", "winner"]
    list_filter = ["status"]
    change_form_template = "admin/experiments/experiment/change_form.html"

    def get_readonly_fields(self, request: HttpRequest, obj: Experiment | None = None) -> list[str]:
        fixed = ["status", "started_at", "stopped_at", "winner", "created_by", "created_at"]
        if obj is not None and obj.status != Experiment.Status.DRAFT:
            fixed += LOCKED_ONCE_STARTED
        return fixed

    def save_model(self, request: HttpRequest, obj: Experiment, form: forms.ModelForm, change: bool) -> None:
        if not change and isinstance(request.user, User):
            obj.created_by = request.user
        super().save_model(request, obj, form, change)

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        experiment = Experiment.objects.filter(pk=object_id).first() if object_id.isdigit() else None
        context = {**(extra_context or {}), "poll_seconds": settings.EXPERIMENTS_POLL_SECONDS,
                   "shadow_arms": shadow_arms_of(experiment=experiment) if experiment else []}
        return super().change_view(request, object_id, form_url, context)

    def get_urls(self) -> list[URLPattern]:
        view = self.admin_site.admin_view
        return [
            path("<int:pk>/results/", view(self.results_view), name="experiments_experiment_results"),
            path("<int:pk>/do/<str:action>/", view(self.transition_view), name="experiments_experiment_do"),
            path("<int:pk>/arm/<int:arm_id>/shadow/", view(self.shadow_view), name="experiments_arm_shadow"),
            path("<int:pk>/arm/<int:arm_id>/<str:action>/", view(self.arm_view), name="experiments_arm_do"),
        ] + super().get_urls()

    @method_decorator(require_GET)
    def results_view(self, request: HttpRequest, pk: int) -> JsonResponse:
        experiment = Experiment.objects.filter(pk=pk).first()
        if experiment is None:
            return JsonResponse({"code": "not_found", "message": f"no experiment {pk}"}, status=404)
        if not self.has_view_permission(request, experiment):
            return JsonResponse({"code": "forbidden", "message": "You may not read experiments."}, status=403)
        return JsonResponse(experiment_results(experiment=experiment))

    @method_decorator(require_GET)
    def shadow_view(self, request: HttpRequest, pk: int, arm_id: int) -> HttpResponse:
        """A shadow arm's answers beside the live ones, newest first, with a summary and its spend."""
        arm = Arm.objects.filter(pk=arm_id, experiment_id=pk, shadow=True).select_related(
            "experiment", "prompt_version").first()
        if arm is None:
            return HttpResponse(status=404)
        if not self.has_view_permission(request, arm.experiment):
            raise PermissionDenied
        return TemplateResponse(request, "admin/experiments/experiment/shadow_comparison.html", {
            **self.admin_site.each_context(request), "opts": self.model._meta, "experiment": arm.experiment,
            "arm": arm, "summary": shadow_summary(arm=arm), "rows": shadow_answers_recent(arm=arm),
            "title": f"Shadow comparison: {arm.name}",
        })

    @method_decorator(require_POST)
    def transition_view(self, request: HttpRequest, pk: int, action: str) -> HttpResponse:
        experiment = self._changeable(request, pk)
        moves: dict[str, Callable[[], bool]] = {
            "start": lambda: experiment_start(experiment=experiment, baseline=experiment_baseline(
                experiment=experiment) if experiment.status == Experiment.Status.DRAFT else None),
            "pause": lambda: experiment_pause(experiment=experiment),
            "stop": lambda: experiment_stop(experiment=experiment),
        }
        if action not in moves:
            return HttpResponse(status=404)
        try:
            moved = moves[action]()
        except ValidationError as exc:
            for problem in exc.messages:
                self.message_user(request, problem, messages.ERROR)
            return self._back(experiment)
        done = {"start": "is running", "pause": "is paused: everyone gets production", "stop": "is stopped"}
        if moved:
            self.message_user(request, f"{experiment.name} {done[action]}.")
        else:
            self.message_user(request, f"{experiment.name} cannot {action} from {experiment.status}.", messages.WARNING)
        return self._back(experiment)

    @method_decorator(require_POST)
    def arm_view(self, request: HttpRequest, pk: int, arm_id: int, action: str) -> HttpResponse:
        experiment = self._changeable(request, pk)
        arm = Arm.objects.filter(pk=arm_id, experiment=experiment).select_related("prompt_version").first()
        if arm is None or action not in ("pause", "resume", "winner"):
            return HttpResponse(status=404)
        if action == "pause":
            done = arm_pause(arm=arm, reason=f"paused by {request.user}")
            text = f"Arm {arm.name} is paused: its visitors get control." if done else "Control is never paused."
        elif action == "resume":
            done, text = arm_resume(arm=arm), f"Arm {arm.name} answers again."
        else:
            user = request.user if isinstance(request.user, User) else None
            try:
                done = experiment_declare_winner(experiment=experiment, arm=arm, user=user)
            except GateRefused as refused:
                self.message_user(request, f"{refused.verdict.note} Move production on {arm.prompt_version}'s page "
                                  "with a reason to override it, then declare the winner.", messages.ERROR)
                return self._back(experiment)
            text = (f"{arm.name} won: the experiment is stopped and production is {arm.prompt_version}."
                    if done else "A winner was declared already.")
        self.message_user(request, text, messages.SUCCESS if done else messages.WARNING)
        return self._back(experiment)

    def _changeable(self, request: HttpRequest, pk: int) -> Experiment:
        experiment = Experiment.objects.filter(pk=pk).first()
        if experiment is None or not self.has_change_permission(request, experiment):
            raise PermissionDenied
        return experiment

    @staticmethod
    def _back(experiment: Experiment) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:experiments_experiment_change", args=[experiment.pk]))
