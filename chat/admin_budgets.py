"""Admin → LLM budget: one page where an operator sees today's spend against the limits and changes them."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import admin
from django.http import HttpRequest
from django.utils.html import format_html

from config.admin import SingletonAdmin

from .budgets import budget_limits, forget_budget_limits, spend_today
from .models import LLMBudget


@admin.register(LLMBudget)
class LLMBudgetAdmin(SingletonAdmin):
    fields = ["in_force", "daily_spend_cap_usd", "visitor_daily_tokens"]
    readonly_fields = ["in_force"]

    @admin.display(description="today")
    def in_force(self, obj: LLMBudget) -> str:
        limits = budget_limits()
        cap = f"of {limits.spend_cap_usd:.2f} USD" if limits.spend_cap_usd else "(no cap)"
        tokens = f"{limits.visitor_tokens:,} tokens per visitor" if limits.visitor_tokens else "no limit per visitor"
        return format_html(
            "Generated answers cost {} USD today {}; {}. Settings: LLM_DAILY_SPEND_CAP_USD={}, "
            "LLM_VISITOR_DAILY_TOKENS={}.", f"{spend_today():.4f}", cap, tokens,
            settings.LLM_DAILY_SPEND_CAP_USD, settings.LLM_VISITOR_DAILY_TOKENS)

    def save_model(self, request: HttpRequest, obj: LLMBudget, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        forget_budget_limits()  # this process at once; the others within budgets.LIMITS_CACHE_SECONDS
