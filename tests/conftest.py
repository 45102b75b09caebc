"""Shared fixtures. Everything runs against the real embedded PostgreSQL+pgvector and Redis
that `make test` starts (config.stack); only the LLM is a local fake server, spoken to over HTTP."""

from __future__ import annotations

import json
import os
import socket
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import pytest
import redis
import uvicorn
from django.conf import settings as django_settings
from django.test.utils import override_settings
from playwright.sync_api import Browser, sync_playwright

from chat.budgets import forget_budget_limits
from chat.llm import gateway
from chat.safety.pii import pii_public_terms_forget
from chat.safety.policy import forget_safety_policy
from experiments.selectors import forget_active_prompt
from knowledge import services as knowledge_services
from knowledge.embeddings import ModelSpec, configured_spec, forget_active_space
from knowledge.models import Source
from knowledge.parsers import DocumentDraft, records_to_drafts
from knowledge.selectors import kb_version
from knowledge.services import documents_sync, lexeme_stats_refresh
from monitoring.confidence import forget_confidence_model
from review.finetune import forget_served_model
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.llm_server import LLMServer
from tests.webhooks import receiver_with  # noqa: F401  (a real webhook endpoint, for any test)

DEMO = Path(django_settings.BASE_DIR) / "demo"
# A slice of the real exercise database: enough neighbours for retrieval to be meaningful.
KB_EXERCISE_IDS = [
    "Barbell_Full_Squat", "Barbell_Squat", "Front_Barbell_Squat", "Goblet_Squat", "Barbell_Deadlift",
    "Romanian_Deadlift", "Pushups", "Barbell_Bench_Press_-_Medium_Grip", "Pullups", "Plank",
    "Dumbbell_Bicep_Curl", "Seated_Calf_Raise", "Lying_Leg_Curls", "Bodyweight_Squat", "Crunches",
]


@pytest.fixture(scope="session")
def exercise_drafts() -> list[DocumentDraft]:
    records = {r["id"]: r for r in json.loads((DEMO / "free-exercise-db" / "exercises.json").read_text())}
    mapping = json.loads((DEMO / "exercises.mapping.json").read_text())
    return records_to_drafts([records[i] for i in KB_EXERCISE_IDS if i in records], mapping)


@pytest.fixture(scope="session", autouse=True)
def _fast_password_hashing() -> Iterator[None]:
    """Django's hasher spends about half a second on a password by design, and the suite creates and signs in
    hundreds of staff users: tests hash with MD5, as Django's documentation advises for test runs."""
    with override_settings(PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"]):
        yield


@pytest.fixture(scope="session")
def _kb_vectors() -> dict[tuple[ModelSpec, str], list[float]]:
    return {}


@contextmanager
def _local_vectors_remembered(memo: dict[tuple[ModelSpec, str], list[float]]) -> Iterator[None]:
    """Ingestion's embeddings, computed once per text in the session: the local model gives a text the same
    vector every time, and embedding is most of what building the knowledge base costs a test."""
    embed = knowledge_services.embed_texts

    def remembered(texts: Sequence[str], spec: ModelSpec | None = None) -> list[list[float]]:
        spec = spec or configured_spec()
        if spec.backend != "local":
            return embed(texts, spec)
        missing = [text for text in dict.fromkeys(texts) if (spec, text) not in memo]
        memo.update(zip([(spec, text) for text in missing], embed(missing, spec) if missing else [], strict=True))
        return [memo[(spec, text)] for text in texts]

    knowledge_services.embed_texts = remembered
    try:
        yield
    finally:
        knowledge_services.embed_texts = embed


@pytest.fixture
def kb(db, exercise_drafts, _kb_vectors):
    """A small real knowledge base, embedded with the local model."""
    source = Source.objects.create(name="exercises", status=Source.Status.READY)
    with _local_vectors_remembered(_kb_vectors):
        documents_sync(source=source, drafts=exercise_drafts)
    lexeme_stats_refresh()
    return source


@pytest.fixture
def llm_server() -> Iterator[LLMServer]:
    with LLMServer() as server:
        yield server


def _forget_process_caches() -> None:
    forget_active_space()
    forget_active_prompt()
    kb_version.cache_clear()
    forget_confidence_model()
    forget_served_model()
    pii_public_terms_forget()
    forget_safety_policy()


@pytest.fixture(autouse=True)
def _fresh_process_caches():
    """Each test's database starts empty; an embedding space, prompt or knowledge-base version
    cached by an earlier test must not leak into it."""
    _forget_process_caches()
    yield
    _forget_process_caches()


# Counters that outlive a test in Redis (the suite shares one): rate limits and budgets, which every test
# starts without, whatever the tests before it asked.
_LIMIT_KEYS = ("*throttle:*", "spotter:limit:*", "spotter:answering:*", "spotter:budget:*")


@pytest.fixture(autouse=True)
def _fresh_limits():
    client = redis.Redis.from_url(django_settings.REDIS_URL)
    for pattern in _LIMIT_KEYS:
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)
    client.close()
    forget_budget_limits()
    yield


@pytest.fixture(autouse=True)
def _fresh_breaker():
    gateway._breaker.record_success()
    yield
    gateway._breaker.record_success()


@pytest.fixture(autouse=True)
async def _llm_connections_closed():
    """A test's event loop ends with the test: the LLM clients made on it close their connections
    first (aiohttp warns about sessions left open)."""
    yield
    await gateway.close_clients()


@pytest.fixture
def online(settings, llm_server):
    """Point the gateway at the fake OpenAI-compatible server (fast retries for tests)."""
    settings.OPENAI_BASE_URL = llm_server.base_url
    settings.OPENAI_API_KEY = "test-key"
    settings.LLM_MODEL = "fake-model"
    settings.LLM_RETRY_BACKOFF_SECONDS = 0.01
    settings.LLM_TIMEOUT_SECONDS = 2.0
    return llm_server


class _LiveASGI:
    def __init__(self) -> None:
        from config.asgi import application

        self._socket = socket.socket()
        self._socket.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._socket.getsockname()[1]}"
        config = uvicorn.Config(application, log_level="warning", lifespan="off", ws="websockets-sansio",
                                ws_max_size=65536)  # as config/stack.py serves it
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, kwargs={"sockets": [self._socket]}, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 15
        while not self._server.started:
            assert time.monotonic() < deadline, "ASGI server did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(5)


@pytest.fixture
def live_asgi(transactional_db) -> Iterator[_LiveASGI]:
    """The real ASGI application (HTTP + websockets) served by uvicorn on a free port."""
    server = _LiveASGI()
    server.start()
    yield server
    server.stop()


@pytest.fixture
def browser(live_asgi) -> Iterator[Browser]:
    """Headless Chromium driven by Playwright, for a test against the live ASGI server (mark the test
    tests.browser.needs_chromium). One per test, not per session: between its calls Playwright's sync API
    leaves its event loop marked as running in this thread, where a later async test or fixture could not
    run its own."""
    os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # the test's ORM calls, made beside that loop
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="session", autouse=True)
def _end_stray_db_sessions(django_db_setup, django_db_blocker):
    """Async tests leave a DB session in asgiref's worker thread; end it after the last test
    so the test database can be dropped."""
    yield
    from django.db import connection

    with django_db_blocker.unblock(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")

