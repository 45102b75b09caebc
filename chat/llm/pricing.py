import logging
from decimal import Decimal

from django.conf import settings

logger = logging.getLogger(__name__)
_PER_MILLION = Decimal(1_000_000)


def answer_cost(*, model: str, tokens_in: int, tokens_out: int) -> Decimal:
    """USD cost from the LLM_PRICING table; an unpriced model costs 0 and is logged once per call."""
    prices = settings.LLM_PRICING.get(model)
    if prices is None:
        if model and model != "offline":
            logger.warning("no price for model %r in LLM_PRICING; cost recorded as 0", model)
        return Decimal(0)
    price_in, price_out = prices
    return ((price_in * tokens_in + price_out * tokens_out) / _PER_MILLION).quantize(Decimal("0.000001"))
