"""The LLM budgets an operator sets in admin (chat/budgets.py enforces them)."""

from django.db import models

__all__ = ["LLMBudget"]


class LLMBudget(models.Model):
    """One row: the limits in force. A blank field keeps the setting's value (LLM_DAILY_SPEND_CAP_USD,
    LLM_VISITOR_DAILY_TOKENS), so an operator changes a limit without a deploy, and clears it to go back."""

    daily_spend_cap_usd = models.DecimalField(
        "daily spend cap (USD)", max_digits=12, decimal_places=4, null=True, blank=True,
        help_text="What generated answers may cost in a day (TIME_ZONE), all visitors together; 0: no cap. "
                  "Blank: the LLM_DAILY_SPEND_CAP_USD setting.")
    visitor_daily_tokens = models.PositiveIntegerField(
        "tokens per visitor per day", null=True, blank=True,
        help_text="LLM tokens (prompt and answer) one visitor's answers may use in a day; 0: no limit. "
                  "Blank: the LLM_VISITOR_DAILY_TOKENS setting.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "LLM budget"
        verbose_name_plural = "LLM budget"

    def __str__(self) -> str:
        return "LLM budget"
