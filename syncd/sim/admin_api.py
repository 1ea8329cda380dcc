"""What every simulator admin route under `/_sim/` shares (Graph, permissions, Intune, report exports).

The admin API is the simulator's own, not Microsoft's: JSON in, JSON out, and a refused request is
`{"error": message}` with its status. Handlers raise `AdminError` (or let `refusing`/`found` turn a
store's exception into one) and `syncd.sim.refusal.answering` answers it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

from aiohttp import web

from syncd.sim.refusal import Refusal, answering


class AdminError(Refusal):
    """An admin request refused with `status` and `{"error": message}`."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def response(self, request: web.Request) -> web.Response:
        return web.json_response({"error": self.message}, status=self.status)


async def read_json(request: web.Request) -> Any:
    """The request's JSON body (400 when it does not parse)."""
    try:
        return await request.json()
    except ValueError:
        raise AdminError(400, "body must be JSON") from None


async def read_object(request: web.Request) -> dict[str, Any]:
    """The request's JSON body, which must be an object."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise AdminError(400, "body must be a JSON object")
    return body


@contextmanager
def refusing(*errors: type[Exception], status: int) -> Iterator[None]:
    """The given exceptions raised inside become an `AdminError` with their text."""
    try:
        yield
    except errors as exc:
        raise AdminError(status, str(exc)) from None


@contextmanager
def found() -> Iterator[None]:
    """A store's `KeyError("<what>")` for an object it does not hold becomes a 404 naming it."""
    try:
        yield
    except KeyError as exc:
        raise AdminError(404, f"{exc.args[0]} not found") from None


def settings_routes(
    path: str,
    view: Callable[[web.Request], object],
    update: Callable[[web.Request, Any], None],
    *,
    body: Callable[[web.Request], Awaitable[Any]] = read_object,
) -> list[web.RouteDef]:
    """A set of settings at `path`: `GET` answers `view(request)`; `PUT` hands the JSON `body` to
    `update(request, body)` (which raises `AdminError` to refuse it) and answers the new view."""

    async def show(request: web.Request) -> web.Response:
        return web.json_response(view(request))

    @answering
    async def change(request: web.Request) -> web.Response:
        update(request, await body(request))
        return web.json_response(view(request))

    return [web.get(path, show), web.put(path, change)]
