"""Readiness checks. Apps register their own (chat registers the LLM breaker), so monitoring
imports none of them."""

from collections.abc import Callable

import redis
from django.conf import settings
from django.db import connection

# name -> check returning (ok, detail)
_checks: dict[str, Callable[[], tuple[bool, str]]] = {}


def register_check(name: str, check: Callable[[], tuple[bool, str]]) -> None:
    _checks[name] = check


def database_check() -> tuple[bool, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
        row = cursor.fetchone()
    return (row is not None, f"pgvector {row[0]}" if row else "pgvector extension missing")


def redis_check() -> tuple[bool, str]:
    client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    finally:
        client.close()
    return True, "ok"


register_check("database", database_check)
register_check("redis", redis_check)


def run_checks() -> dict[str, dict[str, object]]:
    results: dict[str, dict[str, object]] = {}
    for name, check in _checks.items():
        try:
            ok, detail = check()
        except Exception as exc:  # a failing dependency is a result here, not an error
            ok, detail = False, f"{type(exc).__name__}: {exc}"
        results[name] = {"ok": ok, "detail": detail}
    return results
