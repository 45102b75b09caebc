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


def use_bench_database(name: str = BENCH_DB) -> None:
    """Point Django at a fresh database on the same server, so the bench never touches real data
    (one per benchmark, so they can run side by side)."""
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
    _admin(f"CREATE DATABASE {name}")
    os.environ["DATABASE_URL"] = with_database(os.environ["DATABASE_URL"], name)


def drop_bench_database(name: str = BENCH_DB) -> None:
    from django.db import connections

    connections.close_all()
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]
