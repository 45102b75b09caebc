"""Where SECRET_KEY comes from: the environment, or (demo and DEBUG only) a random key kept under var/.

It signs sessions, CSRF tokens and visitor tokens: a key anyone can read lets anyone forge them. So no
constant key ships with the code, and a deployment without SECRET_KEY does not start.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

# Shipped as the default by earlier versions and so published with the code: never a production key.
PUBLISHED_KEYS = frozenset({"spotter-insecure-dev-key-change-me-in-production-0123456789"})


def secret_key(*, configured: str, may_generate: bool, debug: bool, keep_at: Path) -> str:
    """The configured key; with none, a local key when the server is a demo or in DEBUG, else a refusal."""
    if configured:
        if configured in PUBLISHED_KEYS and not debug:
            raise ImproperlyConfigured(
                "SECRET_KEY is the key published with Spotter's code: set a secret one, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`"
            )
        return configured
    if not may_generate:
        raise ImproperlyConfigured(
            "SECRET_KEY is not set. Outside demo mode (DEMO=0, or HOST other than loopback) Spotter needs a "
            "secret key of its own: set SECRET_KEY, e.g. to the output of "
            "`python -c 'import secrets; print(secrets.token_urlsafe(50))'`"
        )
    return local_key(keep_at)


def local_key(path: Path) -> str:
    """A random key made once and kept in `path`, so sessions and visitor tokens outlive a restart.
    Several processes may start at once: the key is written aside and linked into place, and whoever
    links second reads the first one's key."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f"{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    draft.write_text(secrets.token_urlsafe(50))
    draft.chmod(0o600)
    try:
        os.link(draft, path)
    except FileExistsError:
        pass
    finally:
        draft.unlink()
    return path.read_text().strip()
