"""HTTP Basic auth for the staff APIs, counted with the admin login by django-axes (settings AXES_*)."""

from __future__ import annotations

from typing import Any

from axes.helpers import get_cool_off
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BasicAuthentication
from rest_framework.exceptions import AuthenticationFailed, Throttled
from rest_framework.request import Request


class LockoutBasicAuthentication(BasicAuthentication):
    """A client locked out for too many failed sign-ins gets 429 with retry_after, the right password too.

    DRF passes its request on to `authenticate`, which axes needs to know the client by; axes marks that
    request when the client is locked out (its middleware only sees Django's request, so the answer is here).
    """

    def authenticate_credentials(self, userid: str, password: str, request: Request | None = None) -> Any:
        try:
            return super().authenticate_credentials(userid, password, request)
        except AuthenticationFailed:
            if getattr(request, "axes_locked_out", False):
                cool_off = get_cool_off(request)
                raise Throttled(wait=cool_off.total_seconds() if cool_off else None,
                                detail="Too many failed sign-ins: try again later.") from None
            raise


class LockoutBasicScheme(OpenApiAuthenticationExtension):
    """In the OpenAPI schema it is plain HTTP Basic."""

    target_class = LockoutBasicAuthentication
    name = "basicAuth"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {"type": "http", "scheme": "basic"}
