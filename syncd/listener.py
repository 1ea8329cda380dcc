"""One aiohttp listener with the limits an internet-facing port needs.

aiohttp gives a request handler all the time in the world to receive its request line and headers,
keeps idle connections for about an hour and accepts any number of them: a few hundred clients
that send half a request and wait exhaust the process's file descriptors (and with them every
outbound call). Here every connection must deliver a complete request head within
``read_timeout`` seconds, idle keep-alive ends after ``keepalive_timeout``, connections beyond
``max_connections`` are closed at once, and header sizes are capped. The body deadline is the
route's job (it decides whether to read one): see ``read_body``.
"""

from __future__ import annotations

import asyncio
import random
import ssl
from dataclasses import dataclass
from typing import Any

from aiohttp import web
from aiohttp.web_protocol import RequestHandler

from syncd import metrics


@dataclass(frozen=True)
class ListenerLimits:
    """What one connection may cost."""

    read_timeout: float = 10.0
    """Seconds to deliver the request line and headers (and, in ``read_body``, the body)."""
    keepalive_timeout: float = 5.0
    max_connections: int = 256
    max_field_size: int = 8190
    max_headers: int = 64
    lingering_time: float = 1.0
    """Seconds spent draining an unread body before the connection is closed."""
    backlog: int = 64
    """Listen queue, and how many connections asyncio accepts per loop iteration: a burst of
    hundreds of connections is taken in slices instead of in one long iteration."""


class _ConnectionGuard:
    """Hooks a ``web.Server``'s connection callbacks: cap, head deadline, open-connection gauge.

    ``web.Server`` calls ``connection_made``/``connection_lost`` for every connection and
    ``request_factory`` once a request's head has been parsed; the guard wraps those three
    public attributes of the one server instance (aiohttp has no option for any of this).
    """

    def __init__(self, server: web.Server, limits: ListenerLimits, name: str) -> None:
        self.limits = limits
        self.name = name
        self._loop = asyncio.get_running_loop()
        self._deadlines: dict[RequestHandler, asyncio.TimerHandle | None] = {}
        """Open connections → the timer that closes them if no request head arrives (None once one did)."""
        self._open_gauge = metrics.LISTENER_CONNECTIONS.labels(listener=name)
        self._made = server.connection_made
        self._lost = server.connection_lost
        self._factory = server.request_factory
        server.connection_made = self.connection_made  # type: ignore[method-assign]
        server.connection_lost = self.connection_lost  # type: ignore[method-assign]
        server.request_factory = self.request_factory

    @property
    def open(self) -> int:
        return len(self._deadlines)

    def connection_made(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if len(self._deadlines) >= self.limits.max_connections:
            metrics.LISTENER_CLOSED.labels(listener=self.name, reason="connection_limit").inc()
            transport.abort()
            return
        self._deadlines[handler] = self._loop.call_later(
            jittered(self.limits.read_timeout), self._head_deadline, handler, transport
        )
        self._open_gauge.set(len(self._deadlines))
        self._made(handler, transport)

    def connection_lost(self, handler: RequestHandler, exc: BaseException | None = None) -> None:
        if handler not in self._deadlines:
            return  # refused in connection_made: the server never knew it
        timer = self._deadlines.pop(handler)
        if timer is not None:
            timer.cancel()
        self._open_gauge.set(len(self._deadlines))
        self._lost(handler, exc)

    def request_factory(self, message: Any, payload: Any, protocol: Any, writer: Any, task: Any) -> Any:
        timer = self._deadlines.get(protocol)
        if timer is not None:  # the first request's head arrived in time; keep-alive covers the rest
            timer.cancel()
            self._deadlines[protocol] = None
        return self._factory(message, payload, protocol, writer, task)

    def _head_deadline(self, handler: RequestHandler, transport: asyncio.Transport) -> None:
        if self._deadlines.get(handler) is None:
            return
        self._deadlines[handler] = None
        metrics.LISTENER_CLOSED.labels(listener=self.name, reason="read_timeout").inc()
        transport.abort()


class Listener:
    """An ``aiohttp`` app served on one address with ``ListenerLimits``; ``await stop()`` ends it."""

    def __init__(self, runner: web.AppRunner, guard: _ConnectionGuard, url: str) -> None:
        self.runner = runner
        self.guard = guard
        self.url = url

    @classmethod
    async def start(
        cls,
        app: web.Application,
        host: str,
        port: int,
        *,
        name: str,
        limits: ListenerLimits,
        ssl_context: ssl.SSLContext | None = None,
        shutdown_timeout: float = 5.0,
    ) -> Listener:
        runner = web.AppRunner(
            app,
            access_log=None,
            shutdown_timeout=shutdown_timeout,
            keepalive_timeout=limits.keepalive_timeout,
            max_field_size=limits.max_field_size,
            max_line_size=limits.max_field_size,
            max_headers=limits.max_headers,
            lingering_time=limits.lingering_time,
        )
        await runner.setup()
        assert runner.server is not None
        guard = _ConnectionGuard(runner.server, limits, name)
        try:
            site = web.TCPSite(runner, host, port, ssl_context=ssl_context, backlog=limits.backlog)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        addresses = runner.addresses
        bound = addresses[0][1] if addresses else port
        shown = f"[{host}]" if ":" in host else host
        return cls(runner, guard, f"{'https' if ssl_context else 'http'}://{shown}:{bound}")

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])

    async def stop(self) -> None:
        await self.runner.cleanup()


def jittered(timeout: float) -> float:
    """A deadline between 80 and 100 % of ``timeout``: connections opened together (an attack,
    a reconnect storm) do not all expire in the same loop iteration."""
    return timeout * random.uniform(0.8, 1.0)


async def read_body(request: web.Request, max_bytes: int, timeout: float) -> bytes | None:  # noqa: ASYNC109
    """The whole body within ``timeout`` seconds (jittered) and ``max_bytes``; None when too large.

    Raises ``TimeoutError`` when the client is too slow (the caller answers 408).
    """
    if request.content_length is not None and request.content_length > max_bytes:
        return None
    chunks: list[bytes] = []
    size = 0
    async with asyncio.timeout(jittered(timeout)):
        while True:
            chunk = await request.content.readany()
            if not chunk:
                break
            size += len(chunk)
            if size > max_bytes:
                return None
            chunks.append(chunk)
    return b"".join(chunks)
