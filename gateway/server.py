"""How the gateway listens: uvicorn's httptools protocol with read deadlines and a connection cap.

uvicorn bounds only the idle time between two requests (``timeout_keep_alive``). A client that
connects and sends nothing, half a header, or a Content-Length and then too few bytes, would
otherwise keep its connection, and for a body its request task, for as long as it likes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from http import HTTPStatus
from pathlib import Path
from typing import Any, ClassVar

from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from gateway.config import ServerConfig, Settings
from gateway.errors import GatewayError, Overloaded, RequestTimeout

log = logging.getLogger("gateway.http")


def _response_bytes(error: GatewayError) -> bytes:
    """A whole HTTP/1.1 response that closes the connection, for when no app can answer."""
    body = json.dumps(error.body()).encode()
    lines = [f"HTTP/1.1 {error.status} {HTTPStatus(error.status).phrase}",
             "content-type: application/json", f"content-length: {len(body)}",
             "connection: close",
             *(f"{name.lower()}: {value}" for name, value in error.response_headers().items())]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


async def _overloaded(scope: Scope, receive: Receive, send: Send) -> None:
    error = Overloaded()
    body = json.dumps(error.body()).encode()
    headers = [(b"content-type", b"application/json"), (b"connection", b"close"),
               (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in error.response_headers().items()]
    await send({"type": "http.response.start", "status": error.status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class GatewayHttpProtocol(HttpToolsProtocol):
    """One connection: its headers and its body each have a deadline; past the cap, 503.

    The limits are a class attribute because uvicorn builds protocols itself, in every worker
    process; the process that serves sets them from its settings before the first connection.
    """

    limits: ClassVar[ServerConfig] = ServerConfig()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._gateway_app = self.app
        self._deadline: asyncio.TimerHandle | None = None
        self._in_headers = False
        self._in_body = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        # Counted from the connect, so a client that never sends a byte is bounded too.
        self._arm(self.limits.header_timeout_s, self._headers_late)

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        # Armed here, once a read leaves a request unfinished, rather than per request: a
        # request that arrives whole costs no timer.
        if self._deadline is None and not self.transport.is_closing():
            if self._in_headers:
                self._arm(self.limits.header_timeout_s, self._headers_late)
            elif self._in_body:
                self._arm(self.limits.body_timeout_s, self._body_late)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._in_headers = True

    def on_headers_complete(self) -> None:
        self._disarm()
        self._in_headers = False
        self._in_body = True
        over = len(self.connections) > self.limits.max_connections
        self.app = _overloaded if over else self._gateway_app
        if over:
            log.warning("connection limit reached",
                        extra={"max_connections": self.limits.max_connections})
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False
        self._disarm()
        super().on_message_complete()

    def _arm(self, seconds: float, handler: Any) -> None:
        self._disarm()
        self._deadline = self.loop.call_later(seconds, handler)

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _headers_late(self) -> None:
        self._deadline = None
        if self.cycle is not None and not self.cycle.response_complete:
            # A pipelined request waits for the answer to the one before it: not its delay.
            self._arm(self.limits.header_timeout_s, self._headers_late)
            return
        self._cut_off("headers", answer=True)

    def _body_late(self) -> None:
        self._deadline = None
        if self.flow.read_paused:
            # The gateway has not taken the bytes already sent; the client is not the slow one.
            self._arm(self.limits.body_timeout_s, self._body_late)
            return
        answer = not self.cycle.response_started
        # The request's task sees a disconnect; whatever it answers goes nowhere.
        self.cycle.disconnected = True
        self.cycle.message_event.set()
        self._cut_off("body", answer=answer)

    def _cut_off(self, phase: str, *, answer: bool) -> None:
        if self.transport.is_closing():
            return
        log.info("client too slow", extra={"phase": phase})
        if answer:
            error = RequestTimeout(f"The request {phase} did not arrive in time.")
            self.transport.write(_response_bytes(error))
        self.transport.close()


def run(settings: Settings, *, workers: int, config_file: Path | None) -> None:
    """Serve until SIGINT or SIGTERM, in this process or in ``workers`` worker processes."""
    import uvicorn

    GatewayHttpProtocol.limits = settings.server
    options: dict[str, Any] = {"host": settings.host, "port": settings.port, "log_config": None,
                               "loop": "uvloop", "access_log": False}
    if workers > 1:
        # Each worker builds its own app, and sets its own limits, from the same config file.
        os.environ["GATEWAY_CONFIG"] = str(config_file) if config_file else ""
        uvicorn.run("gateway.asgi:app", workers=workers,
                    http="gateway.server:GatewayHttpProtocol", **options)
        return
    from gateway.app import create_app

    uvicorn.run(create_app(settings), http=GatewayHttpProtocol, **options)
