"""A webhook receiver on loopback that records what it is sent and answers from a script."""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from http.server import ThreadingHTTPServer
from typing import Any

from openai import OpenAI

from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.safety import Resolver, system_resolve
from gateway.webhooks.sender import Attempt, deliver, webhook_client
from tests.support.servers import QuietHandler


@dataclass(frozen=True)
class Reply:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    # Seconds to wait before answering: a slow receiver.
    delay_s: float = 0.0


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes


class Receiver:
    """Answers each request with the next scripted reply, then with ``default``."""

    def __init__(self, replies: Iterable[Reply] = (), default: Reply | None = None) -> None:
        self.received: list[Received] = []
        self.replies = deque(replies)
        self.default = default or Reply()
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        # A short poll interval: stopping waits for one, and tests start many receivers.
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.02,),
                                        daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> Receiver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _next(self, request: Received) -> Reply:
        with self._lock:
            self.received.append(request)
            return self.replies.popleft() if self.replies else self.default

    def _handler(self) -> type[QuietHandler]:
        receiver = self

        class Handler(QuietHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                body = self.rfile.read(length) if length else b""
                headers = {name.lower(): value for name, value in self.headers.items()}
                reply = receiver._next(Received(self.command, self.path, headers, body))
                time.sleep(reply.delay_s)
                # A 204 or 304 has no body (RFC 9110); a client may read bytes sent after
                # one as the start of the connection's next answer.
                bodiless = reply.status in (204, 304)
                try:
                    self.send_response(reply.status)
                    for name, value in reply.headers.items():
                        self.send_header(name, value)
                    if not bodiless:
                        self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    if not bodiless:
                        self.wfile.write(reply.body)
                except OSError:
                    self.close_connection = True  # the sender gave up waiting

            do_POST = do_GET = do_PUT = _answer

            def log_message(self, format: str, *args: Any) -> None:
                return

        return Handler

    def wait(self, count: int, timeout: float = 15.0) -> list[Received]:
        """The first ``count`` requests, once that many have come."""
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.received)} of {count} webhooks within {timeout}s")
            time.sleep(0.02)
        return self.received[:count]


def unwrap(request: Received, secret: str) -> Any:
    """The event, as a receiver running the openai SDK reads it (raises on a bad signature)."""
    with OpenAI(api_key="unused", webhook_secret=secret) as client:
        return client.webhooks.unwrap(request.body, request.headers)


def send_once(url: str, body: bytes, secrets: list[str], config: WebhooksConfig, *,
              msg_id: str = "evt_test", resolve: Resolver = system_resolve,
              ssl_context: ssl.SSLContext | None = None,
              clock: Callable[[], float] = time.time) -> Attempt:
    """One delivery attempt from a fresh client, as the delivery worker makes it."""

    async def main() -> Attempt:
        async with webhook_client(config, resolve=resolve, ssl_context=ssl_context) as client:
            return await deliver(client, url, msg_id, body, secrets, config, clock=clock)

    return asyncio.run(main())
