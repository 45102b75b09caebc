"""What every benchmark shares: its own database on the embedded server, percentiles."""

from __future__ import annotations

import os

BENCH_DB = "spotter_bench"


def with_database(url: str, name: str) -> str:
    """The same libpq URL with another database name (host, port, socket options kept)."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def _admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(with_database(os.environ["DATABASE_URL"], "postgres"), autocommit=True) as admin:
        admin.execute(sql)


def use_bench_database() -> None:
    """Point Django at a fresh database on the same server, so the bench never touches real data."""
    _admin(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")
    _admin(f"CREATE DATABASE {BENCH_DB}")
    os.environ["DATABASE_URL"] = with_database(os.environ["DATABASE_URL"], BENCH_DB)


def drop_bench_database() -> None:
    from django.db import connections

    connections.close_all()
    _admin(f"DROP DATABASE IF EXISTS {BENCH_DB} WITH (FORCE)")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
