from functools import lru_cache
from pathlib import Path

from django.http import HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

_WIDGET = Path(__file__).resolve().parent / "static" / "chat" / "widget.js"


@lru_cache(maxsize=1)
def _widget_source() -> bytes:
    return _WIDGET.read_bytes()


@require_GET
def demo_page(request):
    return render(request, "chat/demo.html")


@require_GET
def widget_js(request):
    """The embeddable widget: one script tag on any site."""
    response = HttpResponse(_widget_source(), content_type="application/javascript; charset=utf-8")
    response["Access-Control-Allow-Origin"] = "*"
    response["Cache-Control"] = "public, max-age=300"
    return response
