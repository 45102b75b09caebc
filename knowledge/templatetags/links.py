"""`{% load links %}`: `{{ url|safe_url }}` is the URL when it can only open an http(s) page, else ""."""

from django import template

from knowledge import links

register = template.Library()


@register.filter
def safe_url(value: object) -> str:
    return links.safe_url(value) or ""
