"""What a stored answer is keyed by, and the Redis keys of the cache's exact level."""

from __future__ import annotations

import hashlib
import logging
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

import redis
from django.conf import settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scope:
    """An entry is served only inside the scope it was stored in: a change of embedding space,
    prompt version, knowledge-base version or language makes it unreachable. An answer shaped by
    a visitor's profile is scoped to that visitor and that profile as well."""

    space_id: int
    dimensions: int
    prompt_version_id: int | None
    kb_version: int
    language: str
    visitor_id: str = ""  # set only for answers shaped by this visitor's profile
    profile_hash: str = ""
    # Answers approved under these prompt versions (another experiment arm's) are not served here.
    foreign_prompt_version_ids: frozenset[int] = frozenset()

    def key(self) -> str:
        personal = f":{self.visitor_id}:{self.profile_hash}" if self.visitor_id else ""
        return f"{self.space_id}:{self.prompt_version_id or 0}:{self.kb_version}:{self.language}{personal}"


_PUNCTUATION = re.compile(r"[^\w\s]+")


def normalize_question(text: str) -> str:
    """Case, accents' composed forms, punctuation and spacing do not make a different question."""
    text = unicodedata.normalize("NFKC", text).casefold()
    return " ".join(_PUNCTUATION.sub(" ", text).split())


def question_hash(text: str) -> str:
    return hashlib.sha256(normalize_question(text).encode()).hexdigest()


def answer_key(answer: str, chunk_ids: list[int]) -> str:
    """Two answers resting on the same chunks say the same thing, however the model worded them."""
    if chunk_ids:
        basis = "chunks:" + ",".join(map(str, sorted(set(chunk_ids))))
    else:
        basis = "text:" + normalize_question(answer)
    return hashlib.sha256(basis.encode()).hexdigest()


# --- Redis, the exact level ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def redis_client() -> redis.Redis:
    # Short timeouts: a slow or dead Redis costs one lookup a few ms, never the answer.
    return redis.Redis.from_url(settings.CACHE_REDIS_URL, socket_timeout=0.2, socket_connect_timeout=0.2)


def redis_key(scope: Scope, qhash: str) -> str:
    return f"spotter:answers:{scope.key()}:{qhash}"
