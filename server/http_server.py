"""How babelcap runs its HTTP servers (the gateway, the stand-alone translation server): uvicorn,
with a deadline on request headers that uvicorn itself does not have.

uvicorn times out idle keep-alive connections, but not a client that sends its headers slowly
(one byte a second holds a connection, and a task, for ever) nor one that connects and sends
nothing. :class:`HeaderDeadlineProtocol` closes such a connection once ``HEADER_TIMEOUT_S`` has
passed without complete headers; bodies are bounded by :class:`babelcap.server.asgi.BodyLimit`.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.auto import AutoHTTPProtocol

from babelcap.core import defaults

__all__ = ["HeaderDeadlineProtocol", "run"]


class HeaderDeadlineProtocol(AutoHTTPProtocol):  # type: ignore[misc,valid-type]
    """uvicorn's HTTP protocol, closing connections whose request headers do not arrive within
    ``HEADER_TIMEOUT_S`` of connecting or of the request's first byte."""

    header_timeout_s = defaults.HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:
        super().connection_made(transport)
        self._header_deadline: asyncio.TimerHandle | None = None
        self._watch_headers()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._watch_headers()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None
        super().connection_lost(exc)

    def _waiting_for_headers(self) -> bool:
        # uvicorn makes a request's cycle once its headers are complete.
        return self.cycle is None or self.cycle.response_complete

    def _watch_headers(self) -> None:
        if self.transport.is_closing():
            return
        if self._waiting_for_headers():
            if self._header_deadline is None:
                self._header_deadline = self.loop.call_later(
                    self.header_timeout_s, self._headers_too_slow
                )
        elif self._header_deadline is not None:
            self._header_deadline.cancel()
            self._header_deadline = None

    def _headers_too_slow(self) -> None:
        self._header_deadline = None
        if self._waiting_for_headers() and not self.transport.is_closing():
            self.transport.close()


def run(app: Any, *, host: str, port: int, log_level: str = "warning") -> None:
    """Serve ``app`` until a signal stops it.

    No access log (request lines can carry secrets; the gateway keeps metrics instead), no
    Server header, no proxy-header parsing: each saves per-request work on the hot path. Idle
    client connections stay open longer than clients keep them (httpx, and so the OpenAI SDK,
    drops them after 5 s), so a client never reuses one being closed.
    """
    import uvicorn

    uvicorn.run(
        app,
        host=host,
        port=port,
        http=HeaderDeadlineProtocol,
        log_level=log_level,
        access_log=False,
        proxy_headers=False,
        server_header=False,
        timeout_keep_alive=defaults.BACKEND_KEEP_ALIVE_S,
        h11_max_incomplete_event_size=64 * 1024,
    )
