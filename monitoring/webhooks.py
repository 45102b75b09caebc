"""How Spotter signs what it POSTs to a webhook (alerts here, handoffs in review/notify.py): one scheme, so
an integrator verifies every event the same way."""

from __future__ import annotations

import hashlib
import hmac

SIGNATURE_HEADER = "X-Spotter-Signature"
EVENT_HEADER = "X-Spotter-Event"


def webhook_signature(*, body: bytes, secret: str) -> str:
    """The X-Spotter-Signature value: HMAC-SHA256 of the exact body bytes. A receiver recomputes it over the
    raw body it got (not a re-serialised copy) and compares with `hmac.compare_digest`."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def webhook_headers(*, body: bytes, event: str, secret: str) -> dict[str, str]:
    """JSON content type, the event's name and, with a secret, the signature: an unsigned POST says so by its
    missing header, not by a forgeable one."""
    headers = {"Content-Type": "application/json", EVENT_HEADER: event}
    if secret:
        headers[SIGNATURE_HEADER] = webhook_signature(body=body, secret=secret)
    return headers
