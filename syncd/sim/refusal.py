"""Refused requests, answered in one place per route instead of threaded back through handlers.

Each simulated service has its own error shape (Graph's envelope, Entra's AADSTS body, the admin
API's `{"error"}`): its refusal class renders it, and `answering` turns a raised refusal into
that response.
"""

from __future__ import annotations

from functools import wraps

from aiohttp import web
from aiohttp.typedefs import Handler


class Refusal(Exception):
    """A request a simulated service refuses; `response` renders it in that service's shape."""

    def response(self, request: web.Request) -> web.Response:
        raise NotImplementedError


def answering(handler: Handler) -> Handler:
    """`handler` with the refusals it raises answered as their responses."""

    @wraps(handler)
    async def answer(request: web.Request) -> web.StreamResponse:
        try:
            return await handler(request)
        except Refusal as refusal:
            return refusal.response(request)

    return answer
