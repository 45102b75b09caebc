"""Every API error is JSON: {"code": "...", "message": "...", "details": ...}."""

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
    body = {"code": str(code), "message": str(message)}
    if not (isinstance(detail, dict) and set(detail) == {"detail"}):
        body["details"] = detail
    response.data = body
    return response
