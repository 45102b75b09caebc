"""LLM budgets: tokens per visitor per day, and a daily spend cap for all visitors together.

What generated answers use is counted in Redis, one counter per visitor and one for everyone, per day
in TIME_ZONE: the route step reads both before each question (one round trip), and `finish` charges an
answer once it is generated. Counters rather than a sum over the answers table, because the check runs
for every question. A counter can overshoot its limit by the answers in flight when it is reached (each
is charged when it ends): for one visitor that is one answer, since a visitor has one answer in flight
at a time (chat/limits.py).

When a budget is spent, approved and cached answers are still served (they cost nothing), and the rest
are composed by the offline extractive provider from the knowledge base, with a sentence saying why.

The limits are settings (LLM_DAILY_SPEND_CAP_USD, LLM_VISITOR_DAILY_TOKENS) that an operator can override
in admin (chat.LLMBudget). With Redis unreachable the budgets are not enforced and the failure is logged:
a visitor is not refused an answer because a counter cannot be read.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from decimal import ROUND_CEILING, Decimal
from functools import lru_cache

import redis
from django.conf import settings
from django.utils import timezone

from .models import LLMBudget
from .process_cache import ProcessCache

logger = logging.getLogger(__name__)

SPEND = "spend"  # the day's spend cap is reached
VISITOR = "visitor"  # this visitor's tokens for the day are used up

NOTICES = {
    SPEND: "The assistant has used up today's budget, so this answer is put together directly from the "
           "knowledge base.",
    VISITOR: "You have reached today's limit of answers written by the assistant, so this one is put "
             "together directly from the knowledge base.",
}

_MICRO = Decimal(1_000_000)  # spend is counted in millionths of a dollar: Redis increments whole numbers
_COUNTER_SECONDS = 2 * 24 * 3600  # a day's counters outlive the day in every time zone, then go
LIMITS_CACHE_SECONDS = 5.0  # an operator's change in admin applies within this, without a query a question


@dataclass(frozen=True)
class Limits:
    spend_cap_usd: Decimal  # 0: no cap
    visitor_tokens: int  # 0: no limit

    @property
    def any(self) -> bool:
        return bool(self.spend_cap_usd or self.visitor_tokens)


def _limits_read() -> Limits:
    row = LLMBudget.objects.first()
    return Limits(
        spend_cap_usd=Decimal(str(settings.LLM_DAILY_SPEND_CAP_USD)) if row is None or row.daily_spend_cap_usd is None
        else row.daily_spend_cap_usd,
        visitor_tokens=settings.LLM_VISITOR_DAILY_TOKENS if row is None or row.visitor_daily_tokens is None
        else row.visitor_daily_tokens,
    )


_limits = ProcessCache(_limits_read, seconds=LIMITS_CACHE_SECONDS)


def budget_limits() -> Limits:
    """The limits in force: admin's where set, else the settings'."""
    return _limits.get()


def forget_budget_limits() -> None:
    _limits.forget()


@lru_cache(maxsize=1)
def _redis() -> redis.Redis:
    # Short timeouts: a slow Redis costs a question a few ms, never the answer.
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=0.2, socket_connect_timeout=0.2)


def _keys(visitor_id: str) -> tuple[str, str]:
    day = timezone.localdate().isoformat()
    return f"spotter:budget:{day}:spend", f"spotter:budget:{day}:tokens:{visitor_id}"


def budget_spent(visitor_id: str) -> str:
    """Which budget stops this visitor's next answer from reaching the LLM: SPEND, VISITOR or ""."""
    limits = budget_limits()
    if not limits.any:
        return ""
    try:
        spend_micro, tokens = _redis().mget(_keys(visitor_id))
    except redis.RedisError:
        logger.warning("LLM budgets not enforced: the counters cannot be read", exc_info=True)
        return ""
    if limits.spend_cap_usd and Decimal(int(spend_micro or 0)) / _MICRO >= limits.spend_cap_usd:
        return SPEND
    if limits.visitor_tokens and int(tokens or 0) >= limits.visitor_tokens:
        return VISITOR
    return ""


def budget_charge(*, visitor_id: str, tokens: int, cost: Decimal) -> None:
    """Count what a generated answer used against today's budgets."""
    spend_key, tokens_key = _keys(visitor_id)
    with _redis().pipeline(transaction=False) as pipe:
        pipe.incrby(spend_key, int((cost * _MICRO).to_integral_value(rounding=ROUND_CEILING)))
        pipe.expire(spend_key, _COUNTER_SECONDS)
        if visitor_id:
            pipe.incrby(tokens_key, tokens)
            pipe.expire(tokens_key, _COUNTER_SECONDS)
        pipe.execute()


def spend_today() -> Decimal:
    """What generated answers cost today, as the cap counts it (admin shows it beside the cap)."""
    value = _redis().get(_keys("")[0])
    return Decimal(int(value or 0)) / _MICRO
