"""Prompts in admin: versions are written once and never changed; labels move between them (deploy,
rollback), every move recorded; any two versions compare as a diff."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from django import forms
from django.contrib import admin, messages
from django.contrib.auth.models import User
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404
from django.urls import URLPattern, path, reverse
from django.utils.decorators import method_decorator
from django.utils.html import format_html_join
from django.views.decorators.http import require_POST

from config.admin import ReadOnlyAdminMixin

from . import admin_experiments  # noqa: F401  (registers the experiment admin)
from .gate import GateRefused, evaluations_of, production_gate
from .models import PRODUCTION, STAGING, PromptLabelMove, PromptVersion
from .selectors import answers_per_version, label_history, version_diff, version_labels
from .services import prompt_label_move, prompt_label_rollback, prompt_version_create
from .templating import ANSWER_PROMPT_VARIABLES, template_errors


class PromptVersionForm(forms.ModelForm):
    """The form of a new version; variables are checked here as well as in the service, so an
    operator sees the problem next to the text."""

    class Meta:
        model = PromptVersion
        fields = ["name", "system_prompt", "model"]
        help_texts = {"system_prompt": "Variables: " + ", ".join(
            f"{{{name}}} ({what})" for name, what in ANSWER_PROMPT_VARIABLES.items()) + "; {{ and }} for a brace."}

    def clean_system_prompt(self) -> str:
        text = self.cleaned_data["system_prompt"]
        errors = template_errors(text)
        if errors:
            raise forms.ValidationError(errors)
        return text


def _user(request: HttpRequest) -> User:
    if not isinstance(request.user, User):  # admin_view lets no anonymous visitor through
        raise PermissionDenied
    return request.user


@admin.register(PromptVersion)
class PromptVersionAdmin(admin.ModelAdmin):
    form = PromptVersionForm
    list_display = ["__str__", "labels_shown", "model", "answers", "created_by", "created_at"]
    list_filter = ["name", "labels__label"]
    search_fields = ["name", "system_prompt"]
    change_form_template = "admin/experiments/promptversion/change_form.html"
    readonly_fields = ["name", "version", "system_prompt", "model", "created_by", "created_at"]

    def get_readonly_fields(self, request: HttpRequest, obj: PromptVersion | None = None) -> list[str]:
        # Versions are immutable once saved: "new version from this one" copies it into the add form.
        return list(self.readonly_fields) if obj else []

    def get_fields(self, request: HttpRequest, obj: PromptVersion | None = None) -> list[Any]:
        return list(self.readonly_fields) if obj else ["name", "system_prompt", "model"]

    def save_model(self, request: HttpRequest, obj: PromptVersion, form: forms.ModelForm, change: bool) -> None:
        if change:
            return  # an existing version never changes, and saving its page never makes a new one
        created = prompt_version_create(name=obj.name, system_prompt=obj.system_prompt, model=obj.model,
                                        created_by=_user(request))
        obj.pk, obj.version = created.pk, created.version

    def change_view(self, request: HttpRequest, object_id: str, form_url: str = "",
                    extra_context: dict[str, Any] | None = None) -> HttpResponse:
        version = self.get_object(request, object_id)
        context = {**(extra_context or {}), "show_save": False, "show_save_and_continue": False,
                   "show_save_and_add_another": False, "show_delete": False}
        if version is not None:
            context |= self._version_context(request, version)
        return super().change_view(request, object_id, form_url, context)

    def _version_context(self, request: HttpRequest, version: PromptVersion) -> dict[str, Any]:
        others = PromptVersion.objects.filter(name=version.name).exclude(pk=version.pk)
        raw = request.GET.get("against", "")
        # By default against the version before (others are newest first).
        against = others.filter(pk=int(raw)).first() if raw.isdigit() else others.filter(
            version__lt=version.version).first()
        return {
            "version": version, "labels": version_labels(version=version), "others": others,
            "against": against, "diff": version_diff(old=against, new=version) if against else [],
            "history": label_history(prompt_name=version.name),
            "answers": answers_per_version(version_ids=[version.pk]).get(version.pk, 0),
            "common_labels": [PRODUCTION, STAGING],
            "may_move": self.has_change_permission(request, version),
            "evaluations": evaluations_of(version=version),
            "gate": production_gate(version=version) if PRODUCTION not in version_labels(version=version) else None,
            "copy_url": reverse("admin:experiments_promptversion_add") + "?" + _copy_query(version),
        }

    def get_urls(self) -> list[URLPattern]:
        return [
            path("<int:pk>/label/", self.admin_site.admin_view(self.move_label_view), name="experiments_prompt_label"),
            path("<int:pk>/rollback/", self.admin_site.admin_view(self.rollback_view),
                 name="experiments_prompt_rollback"),
        ] + super().get_urls()

    @staticmethod
    def _back(version: PromptVersion) -> HttpResponseRedirect:
        return HttpResponseRedirect(reverse("admin:experiments_promptversion_change", args=[version.pk]))

    @method_decorator(require_POST)  # a label moves on a button, never on a followed link
    def move_label_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = get_object_or_404(PromptVersion, pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        label = request.POST.get("label", "").strip().lower()
        if not _is_label(label):
            self.message_user(request, "A label is letters, digits, - and _ only.", messages.ERROR)
            return self._back(version)
        try:
            moved = prompt_label_move(version=version, label=label, moved_by=_user(request),
                                      reason=request.POST.get("reason", "").strip(),
                                      override=request.POST.get("override", ""))
        except GateRefused as refused:
            self.message_user(request, f"{refused.verdict.note} Give a reason to override it.", messages.ERROR)
            return self._back(version)
        self.message_user(request, f"The {label} label now points at {version}." if moved
                          else f"The {label} label already points here.")
        return self._back(version)

    @method_decorator(require_POST)  # a label moves on a button, never on a followed link
    def rollback_view(self, request: HttpRequest, pk: int) -> HttpResponse:
        version = get_object_or_404(PromptVersion, pk=pk)
        if not self.has_change_permission(request, version):
            raise PermissionDenied
        label = request.POST.get("label", PRODUCTION)
        move = prompt_label_rollback(prompt_name=version.name, label=label, moved_by=_user(request))
        if move is None:
            self.message_user(request, f"{label} has no earlier version to go back to.", messages.WARNING)
            return self._back(version)
        self.message_user(request, f"{label} rolled back to {move.to_version}.")
        return self._back(move.to_version) if move.to_version else self._back(version)

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        self._answers = answers_per_version(version_ids=list(PromptVersion.objects.values_list("pk", flat=True)))
        return super().changelist_view(request, extra_context)

    def get_queryset(self, request: HttpRequest) -> QuerySet[PromptVersion]:
        return super().get_queryset(request).select_related("created_by").prefetch_related("labels")

    @admin.display(description="labels")
    def labels_shown(self, obj: PromptVersion) -> str:
        return format_html_join(" ", '<span class="prompt-label">{}</span>', ((lb.label,) for lb in obj.labels.all()))

    @admin.display(description="answers")
    def answers(self, obj: PromptVersion) -> int:
        return getattr(self, "_answers", {}).get(obj.pk, 0)


def _is_label(label: str) -> bool:
    try:
        forms.SlugField(max_length=50).clean(label)
    except forms.ValidationError:
        return False
    return True


def _copy_query(version: PromptVersion) -> str:
    return urlencode({"name": version.name, "system_prompt": version.system_prompt, "model": version.model})


@admin.register(PromptLabelMove)
class PromptLabelMoveAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    """The deploy history: read only."""

    list_display = ["moved_at", "prompt_name", "label", "from_version", "to_version", "moved_by", "reason"]
    list_filter = ["prompt_name", "label"]
    list_select_related = ["from_version", "to_version", "moved_by"]
