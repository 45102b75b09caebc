"""Anonymous visitors: a random id, handed out as a signed token the widget keeps.

The token is not a cookie, so a site embedding the widget cannot be used to act for a
visitor (no CSRF surface); whoever holds the token is that visitor.
"""

import uuid
from dataclasses import dataclass

from django.core import signing
from rest_framework import authentication, exceptions

_SALT = "spotter.visitor"


@dataclass(frozen=True)
class Visitor:
    id: str
    is_authenticated: bool = True


def visitor_token_issue() -> tuple[str, str]:
    visitor_id = uuid.uuid4().hex
    return visitor_id, signing.dumps(visitor_id, salt=_SALT)


def visitor_id_from_token(token: str) -> str | None:
    try:
        value = signing.loads(token, salt=_SALT)
    except signing.BadSignature:
        return None
    return value if isinstance(value, str) else None


class VisitorTokenAuthentication(authentication.BaseAuthentication):
    header = "HTTP_X_VISITOR_TOKEN"

    def authenticate(self, request):
        token = request.META.get(self.header)
        if not token:
            return None
        visitor_id = visitor_id_from_token(token)
        if visitor_id is None:
            raise exceptions.AuthenticationFailed("invalid visitor token")
        return Visitor(visitor_id), token

    def authenticate_header(self, request) -> str:
        return "X-Visitor-Token"
