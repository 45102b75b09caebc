"""Every HTTP request gets a request id: the caller's `X-Request-ID` when it is a sane one, else a new
one. It is bound for the request's log lines and sent back in the response's `X-Request-ID`.

First in MIDDLEWARE, so the other middleware's lines carry it too. Sync and async: under ASGI it runs
on the event loop, with no thread hop of its own."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction
from django.http import HttpRequest
from django.http.response import HttpResponseBase
from django.utils.decorators import sync_and_async_middleware

from .logging import REQUEST_ID_HEADER, bind, request_id_accept

Handler = Callable[[HttpRequest], Any]


def _request_id(request: HttpRequest) -> str:
    request_id = request_id_accept(request.headers.get(REQUEST_ID_HEADER))
    request.request_id = request_id  # type: ignore[attr-defined]  # for Django's lines after the middleware
    return request_id


@sync_and_async_middleware
def request_id_middleware(get_response: Handler) -> Handler:
    if iscoroutinefunction(get_response):
        respond: Callable[[HttpRequest], Awaitable[HttpResponseBase]] = get_response

        async def middleware_async(request: HttpRequest) -> HttpResponseBase:
            request_id = _request_id(request)
            with bind(request_id=request_id):
                response = await respond(request)
            response[REQUEST_ID_HEADER] = request_id
            return response

        return middleware_async

    def middleware(request: HttpRequest) -> HttpResponseBase:
        request_id = _request_id(request)
        with bind(request_id=request_id):
            response: HttpResponseBase = get_response(request)
        response[REQUEST_ID_HEADER] = request_id
        return response

    return middleware
