"""Admin → Safety policy: one page where an operator sets what injections and flagged content get."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html

from .models import ContentSafetyPolicy
from .safety.policy import forget_safety_policy, safety_policy


@admin.register(ContentSafetyPolicy)
class ContentSafetyPolicyAdmin(admin.ModelAdmin):
    fields = ["in_force", "injection", "question_moderation", "answer_moderation",
              "injection_threshold", "moderation_threshold"]
    readonly_fields = ["in_force"]

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """There is one policy: the list is its page."""
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        policy = ContentSafetyPolicy.objects.first() or ContentSafetyPolicy.objects.create()
        return HttpResponseRedirect(reverse("admin:chat_contentsafetypolicy_change", args=[policy.pk]))

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description="in force")
    def in_force(self, obj: ContentSafetyPolicy) -> str:
        policy = safety_policy()
        return format_html(
            "injection: {}; flagged question: {}; flagged answer: {}. Moderation: {}.",
            policy.injection, policy.question_moderation, policy.answer_moderation,
            f"OpenAI ({settings.SAFETY_MODERATION_MODEL}) when an LLM is configured, else offline")

    def save_model(self, request: HttpRequest, obj: ContentSafetyPolicy, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        forget_safety_policy()  # this process at once; the others within policy.POLICY_CACHE_SECONDS
