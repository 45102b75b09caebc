"""Anonymous visitors: a random id, handed out as a signed token the widget keeps.

The token is not a cookie, so a site embedding the widget cannot be used to act for a
visitor (no CSRF surface); whoever holds the token is that visitor. It carries the time it was
signed and is good for VISITOR_TOKEN_MAX_AGE_DAYS; a still-valid token buys a new one for the
same visitor. The websocket never sees the token: it opens with a ticket, good once and for
CHAT_TICKET_SECONDS, so what URLs end up in (proxy logs, browser history) is worthless soon.
"""

import secrets
import uuid
from dataclasses import dataclass
from datetime import timedelta
from functools import cache

import redis
from django.conf import settings
from django.core import signing
from rest_framework import authentication, exceptions

from .limits import redis_client
from .privacy import visitor_erased

_SALT = "spotter.visitor"


@dataclass(frozen=True)
class Visitor:
    id: str
    is_authenticated: bool = True


class TokenRefused(exceptions.AuthenticationFailed):
    """401, code `token_expired` (the widget then asks for a new visitor) or `authentication_failed`."""


def token_max_age() -> timedelta:
    return timedelta(days=settings.VISITOR_TOKEN_MAX_AGE_DAYS)


def visitor_token_issue(visitor_id: str | None = None) -> tuple[str, str]:
    """A token for this visitor, or for a new one."""
    visitor_id = visitor_id or uuid.uuid4().hex
    return visitor_id, signing.dumps(visitor_id, salt=_SALT)


def visitor_id_from_token(token: str) -> str:
    """The visitor the token names. Raises TokenRefused when it is expired, forged or malformed."""
    try:
        value = signing.loads(token, salt=_SALT, max_age=token_max_age())
    except signing.SignatureExpired as exc:
        raise TokenRefused("The visitor token expired; ask for a new one.", code="token_expired") from exc
    except signing.BadSignature as exc:
        raise TokenRefused("Invalid visitor token.") from exc
    if not isinstance(value, str):
        raise TokenRefused("Invalid visitor token.")
    if visitor_erased(value):  # `token_expired`: the widget starts again as a new visitor by itself
        raise TokenRefused("This visitor's data was erased; ask for a new visitor.", code="token_expired")
    return value


class VisitorTokenAuthentication(authentication.BaseAuthentication):
    header = "HTTP_X_VISITOR_TOKEN"

    def authenticate(self, request):
        token = request.META.get(self.header)
        if not token:
            return None
        return Visitor(visitor_id_from_token(token)), token

    def authenticate_header(self, request) -> str:
        return "X-Visitor-Token"


# --- websocket tickets ------------------------------------------------------------------------------


def _ticket_key(ticket: str) -> str:
    return f"spotter:ticket:{ticket}"


@cache
@cache
def _sync_redis() -> redis.Redis:
    return redis.Redis.from_url(settings.REDIS_URL, decode_responses=True)


def ticket_issue(*, visitor_id: str) -> str:
    """A ticket that opens one websocket as this visitor, within CHAT_TICKET_SECONDS."""
    ticket = secrets.token_urlsafe(24)
    _sync_redis().set(_ticket_key(ticket), visitor_id, ex=settings.CHAT_TICKET_SECONDS)
    return ticket


async def ticket_redeem(ticket: str) -> str | None:
    """The ticket's visitor, once: the ticket is gone after this (GETDEL), so a replay finds nothing."""
    if not ticket or len(ticket) > 64:
        return None
    visitor_id = await redis_client().getdel(_ticket_key(ticket))
    return visitor_id if isinstance(visitor_id, str) else None
