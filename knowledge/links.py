"""Links to pages: only http(s) ones are stored, and only those render as links.

A URL from data (a document's, a cited source's, an approved answer's) may say `javascript:` or
`data:`; rendered as a link in admin it runs in a staff member's session. Browsers ignore
surrounding spaces and control characters and the scheme's case, so the check does too.
Every app may import this module (knowledge imports no other app).
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from django.utils.html import format_html
from django.utils.safestring import SafeString

# What a browser strips from both ends of a URL before reading its scheme.
_EDGES = "".join(chr(c) for c in range(0x21))
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_WEB = re.compile(r"https?://", re.IGNORECASE)


def web_url(value: object) -> str | None:
    """The URL when it is an absolute http(s) URL with a host, else None: what may be stored."""
    if not isinstance(value, str):
        return None
    url = value.strip(_EDGES)
    if _CONTROL.search(url) or not _WEB.match(url):
        return None
    try:
        return url if urlsplit(url).hostname else None
    except ValueError:  # a malformed host ("http://[x")
        return None


def safe_url(value: object) -> str | None:
    """A link target that can only open an http(s) page: an absolute http(s) URL, or a path on this
    site (a document's own page, `/knowledge/documents/1/`). None for anything else: show it as text."""
    if isinstance(value, str) and value.startswith("/") and not _CONTROL.search(value):
        return value
    return web_url(value)


def link_html(url: object, text: object, *, new_tab: bool = False) -> SafeString:
    """`text` linked to `url`, or `text` alone when the URL is not safe to follow."""
    href = safe_url(url)
    if href is None:
        return format_html("{}", text)
    if new_tab:
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', href, text)
    return format_html('<a href="{}">{}</a>', href, text)


def url_for_storage(value: str) -> str:
    """A document URL as stored: empty, or an absolute http(s) URL; raises ValueError otherwise."""
    if not value.strip():
        return ""
    url = web_url(value)
    if url is None:
        raise ValueError(f"not an http(s) URL: {value[:100]!r} (only http:// and https:// links are kept)")
    return url
