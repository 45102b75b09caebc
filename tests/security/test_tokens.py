"""Visitor tokens expire and rotate; the websocket opens with a one-use, short-lived ticket."""

import asyncio
import time

import pytest
from channels.db import database_sync_to_async as in_db
from channels.testing import WebsocketCommunicator
from django.core import signing
from django.test import Client

from chat.models import Conversation
from chat.visitors import ticket_issue, visitor_id_from_token, visitor_token_issue
from config.asgi import application
from tests.chat.test_consumer import TIMEOUT, ask_and_finish

pytestmark = pytest.mark.django_db(transaction=True)


def post(path, token=None):
    headers = {"HTTP_X_VISITOR_TOKEN": token} if token else {}
    return Client().post(path, content_type="application/json", **headers)


@pytest.fixture
def issued_long_ago(monkeypatch, settings):
    """Tokens signed from now on carry a time past their lifetime (the signer's clock, turned back)."""
    past = int(time.time()) - settings.VISITOR_TOKEN_MAX_AGE_DAYS * 86400 - 60
    monkeypatch.setattr(signing.TimestampSigner, "timestamp", lambda self: signing.b62_encode(past))


def test_a_new_visitor_is_told_how_long_its_token_is_good_for(db, settings):
    body = post("/api/v1/visitors/").json()
    assert body["expires_in"] == settings.VISITOR_TOKEN_MAX_AGE_DAYS * 86400
    assert visitor_id_from_token(body["token"]) == body["visitor_id"]


def test_a_valid_token_is_traded_for_a_new_one_of_the_same_visitor(db):
    visitor_id, token = visitor_token_issue()
    response = post("/api/v1/visitors/refresh/", token)
    assert response.status_code == 200
    assert response.json()["visitor_id"] == visitor_id
    assert Client().get("/api/v1/profile/", HTTP_X_VISITOR_TOKEN=response.json()["token"]).status_code == 200


def test_an_expired_token_gets_a_clear_401_everywhere(db, issued_long_ago):
    _, token = visitor_token_issue()
    for response in (post("/api/v1/visitors/refresh/", token), post("/api/v1/visitors/ticket/", token),
                     Client().get("/api/v1/profile/", HTTP_X_VISITOR_TOKEN=token)):
        assert response.status_code == 401
        assert response.json()["code"] == "token_expired" and response.json()["message"]


@pytest.mark.parametrize("token", ["garbage", signing.dumps("someone", salt="another.salt"),
                                   signing.dumps(["not", "an", "id"], salt="spotter.visitor")])
def test_a_forged_or_malformed_token_is_refused(db, token):
    response = post("/api/v1/visitors/refresh/", token)
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"


def test_a_ticket_needs_a_token(db):
    assert post("/api/v1/visitors/ticket/").status_code == 401


async def _open(query: str) -> WebsocketCommunicator:
    socket = WebsocketCommunicator(application, f"/ws/chat/?{query}")
    connected, _ = await socket.connect(timeout=TIMEOUT)
    assert connected
    return socket


async def _closed_with(socket: WebsocketCommunicator) -> int:
    output = await socket.receive_output(timeout=TIMEOUT)
    assert output["type"] == "websocket.close"
    return output["code"]


async def test_a_socket_opened_with_a_ticket_is_the_tokens_visitor(kb):
    visitor_id, token = visitor_token_issue()
    response = await in_db(post)("/api/v1/visitors/ticket/", token)
    assert response.status_code == 201 and response.json()["expires_in"] == 60
    socket = await _open(f"ticket={response.json()['ticket']}")
    start = await ask_and_finish(socket, "How do I do a plank?")
    conversation = await in_db(Conversation.objects.get)(pk=start["conversation_id"])
    assert conversation.visitor_id == visitor_id
    await socket.disconnect()


async def test_a_ticket_opens_one_socket_only(db):
    ticket = await in_db(ticket_issue)(visitor_id="v1")
    first = await _open(f"ticket={ticket}")
    assert await first.receive_nothing(timeout=0.2)  # open
    replayed = await _open(f"ticket={ticket}")
    assert await _closed_with(replayed) == 4401
    await first.disconnect()


async def test_an_expired_ticket_is_refused(db, settings):
    settings.CHAT_TICKET_SECONDS = 1
    ticket = await in_db(ticket_issue)(visitor_id="v1")
    await asyncio.sleep(1.5)
    assert await _closed_with(await _open(f"ticket={ticket}")) == 4401


@pytest.mark.parametrize("query", ["", "ticket=made-up", "token={token}"])
async def test_a_socket_without_a_valid_ticket_is_closed_with_4401(db, query):
    """The long-lived token is no longer accepted in the URL, where proxies and logs keep it."""
    socket = await _open(query.format(token=visitor_token_issue()[1]))
    assert await _closed_with(socket) == 4401
