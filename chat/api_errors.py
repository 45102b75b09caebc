"""Every API error is JSON: {"code": "...", "message": "...", "details": ...}."""

import math

from rest_framework.exceptions import Throttled
from rest_framework.views import exception_handler


def json_exception_handler(exc, context):
    response = exception_handler(exc, context)
    if response is None:
        return None
    code = getattr(exc, "default_code", "error")
    if hasattr(exc, "get_codes") and isinstance(exc.get_codes(), str):
        code = exc.get_codes()
    detail = response.data
    message = detail.get("detail") if isinstance(detail, dict) and "detail" in detail else "invalid request"
    body: dict[str, object] = {"code": str(code), "message": str(message)}
    if isinstance(exc, Throttled):  # the one code a client backs off on; Retry-After says the same
        body = {"code": "rate_limited", "message": "Too many requests; try again later.",
                "retry_after": math.ceil(getattr(exc, "wait", None) or 1)}  # the stubs lack `wait`
    if not (isinstance(detail, dict) and set(detail) == {"detail"}):
        body["details"] = detail
    response.data = body
    return response
