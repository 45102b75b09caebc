"""What every benchmark shares: its own database on the embedded server, percentiles."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

BENCH_DB = "spotter_bench"
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # the project's packages, for a bench run as `python bench/x.py`
    sys.path.insert(0, str(ROOT))
EXERCISES = ROOT / "demo" / "free-exercise-db" / "exercises.json"
EXERCISES_MAPPING = ROOT / "demo" / "exercises.mapping.json"


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
    drop_database(name)


def drop_database(name: str) -> None:
    _admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def pct(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def run_in_bench_database(run: Callable[[], int], *, name: str = BENCH_DB, keep_db: bool = False) -> int:
    """Django set up against a fresh, migrated `name` database; `run()`; the database dropped after
    (unless kept for a look)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    use_bench_database(name)
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    try:
        return run()
    finally:
        if not keep_db:
            drop_bench_database(name)


def parse_args(parser: argparse.ArgumentParser, smoke: dict[str, object]) -> argparse.Namespace:
    """The parser's arguments, plus `--smoke`: every size at `smoke`'s tiny values (an option
    given on the command line still wins), for a test that the benchmark runs to its RESULT line."""
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: a check that it runs, not a measurement")
    if parser.parse_known_args()[0].smoke:
        parser.set_defaults(**smoke)
    return parser.parse_args()


@contextmanager
def exercises_file(limit: int | None = None) -> Iterator[Path]:
    """The exercise database as a JSON file: all of it, or its first `limit` exercises."""
    if limit is None:
        yield EXERCISES
        return
    records = json.loads(EXERCISES.read_text())[:limit]
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as handle:
        json.dump(records, handle)
    try:
        yield Path(handle.name)
    finally:
        os.unlink(handle.name)
