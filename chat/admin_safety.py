"""Admin → Safety policy: one page where an operator sets what injections and flagged content get."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from config.admin import SingletonAdmin

from .models import ContentSafetyPolicy
from .safety.policy import forget_safety_policy, safety_policy


@admin.register(ContentSafetyPolicy)
class ContentSafetyPolicyAdmin(SingletonAdmin):
    fields = ["in_force", "injection", "question_moderation", "answer_moderation",
              "injection_threshold", "moderation_threshold"]
    readonly_fields = ["in_force"]

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
