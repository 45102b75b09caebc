"""A webhook endpoint as an integrator would run one (a real HTTP server in a thread), for the tests of
every signed POST Spotter sends: alerts and handoff notifications."""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from monitoring.webhooks import webhook_signature

SECRET = "receiver-and-spotter-share-this"


@dataclass
class Receiver:
    """A webhook endpoint as an integrator would write one: it checks the signature over the raw body."""

    secret: str
    fail_first: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def answer(self, body: bytes, headers: dict[str, str]) -> int:
        expected = webhook_signature(body=body, secret=self.secret)
        valid = hmac.compare_digest(expected, headers.get("x-spotter-signature", ""))
        self.deliveries.append({"body": json.loads(body), "valid": valid, "event": headers.get("x-spotter-event")})
        if not valid:
            return 401
        return 500 if len(self.deliveries) <= self.fail_first else 200


def _handler_for(receiver: Receiver) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            status = receiver.answer(body, {k.lower(): v for k, v in self.headers.items()})
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def receiver_with() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def start(*, secret: str = SECRET, fail_first: int = 0) -> Receiver:
        receiver = Receiver(secret=secret, fail_first=fail_first)
        server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(receiver))
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        receiver.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/spotter"
        return receiver

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
