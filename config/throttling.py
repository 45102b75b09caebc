"""Rate limits for every REST endpoint (DRF throttles, counted in the Redis cache so every process
shares the counts).

Three kinds of bucket, each a rate in settings (API_RATES), and a request must fit in all that apply:
- `address`: every request from one client address, to any endpoint;
- `visitor`: every request made with one visitor token, from any address;
- an endpoint's own rate, per address (and per visitor where there is one), for the endpoints an
  attacker reaches for first: issuing visitor tokens, the public knowledge search, posting a message.

DRF's own scoped throttles need a `throttle_scope` on each view; these read the endpoint from the
resolved URL name instead, so every view, also one added later, is limited without touching it.
The client address is REMOTE_ADDR (DRF's NUM_PROXIES is 0): behind a proxy the ASGI server puts the
visitor's address there (uvicorn's FORWARDED_ALLOW_IPS), and a client-sent X-Forwarded-For is ignored.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from rest_framework.request import Request
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle


class _Bucket(SimpleRateThrottle):
    """One counter under `key` with `rate` ("20/min"); DRF's sliding-window history in the cache."""

    def __init__(self, key: str, rate: str) -> None:  # noqa: D107 - SimpleRateThrottle reads its rate from a scope
        self.key, self.rate = key, rate
        self.num_requests, self.duration = self.parse_rate(rate)

    def get_cache_key(self, request: Request, view: Any) -> str | None:
        return self.key


class ApiRateThrottle(BaseThrottle):
    """Every bucket that applies to the request; the wait is the longest of those that are full."""

    def __init__(self) -> None:
        self._full: list[_Bucket] = []

    def buckets(self, request: Request, view: Any) -> list[_Bucket]:
        rates = settings.API_RATES
        address = self.get_ident(request)
        visitor = getattr(request.user, "id", None) if _is_visitor(request) else None
        endpoint = request.resolver_match.url_name if request.resolver_match else ""
        found = [_Bucket(f"throttle:address:{address}", rates["address"])]
        if visitor:
            found.append(_Bucket(f"throttle:visitor:{visitor}", rates["visitor"]))
        rate = rates.get(f"{endpoint}:{request.method}") or rates.get(endpoint or "")
        if rate:
            found.append(_Bucket(f"throttle:{endpoint}:{request.method}:address:{address}", rate))
            if visitor:
                found.append(_Bucket(f"throttle:{endpoint}:{request.method}:visitor:{visitor}", rate))
        return found

    def allow_request(self, request: Request, view: Any) -> bool:
        self._full = [bucket for bucket in self.buckets(request, view) if not bucket.allow_request(request, view)]
        return not self._full

    def wait(self) -> float | None:
        waits = [w for w in (bucket.wait() for bucket in self._full) if w is not None]
        return max(waits) if waits else None


def _is_visitor(request: Request) -> bool:
    """A visitor token's user (chat.visitors.Visitor), not a staff account: read by duck type, since
    config names no app's classes here."""
    user = request.user
    return getattr(user, "is_authenticated", False) and not hasattr(user, "is_staff")
