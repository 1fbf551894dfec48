"""Upstream connections whose reads stop when the gateway is not keeping up.

httpcore's default network layer (anyio's socket stream) resumes reading each time it waits
for data, and the event loop then drains the socket's whole kernel buffer into memory, several
megabytes per connection once TCP has grown it, whenever the client downloading a video reads
more slowly than the upstream sends. Over asyncio's ``StreamReader``, reading pauses once
``READ_LIMIT`` bytes wait in the gateway, so the rest stays in the kernel and TCP slows the
sender instead. Idle connections are also checked for a server hang-up from what the stream has
already seen, rather than with a system call per pooled connection on every request.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.cookiejar
import socket
import ssl
from collections.abc import Iterable, Iterator
from typing import Any

import httpcore
import httpx

# The stream pauses reading past twice this many buffered bytes.
READ_LIMIT = 64 * 1024

SocketOption = (tuple[int, int, int] | tuple[int, int, bytes | bytearray]
                | tuple[int, int, None, int])


@contextlib.contextmanager
def _mapped(errors: dict[type[BaseException], type[Exception]]) -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in errors.items():
            if isinstance(exc, source):
                raise target(str(exc) or type(exc).__name__) from exc
        raise


class FlowControlledStream(httpcore.AsyncNetworkStream):
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._reader = reader
        self._writer = writer

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        with _mapped({TimeoutError: httpcore.ReadTimeout, OSError: httpcore.ReadError}):
            async with asyncio.timeout(timeout):
                return await self._reader.read(max_bytes)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        with _mapped({TimeoutError: httpcore.WriteTimeout, OSError: httpcore.WriteError,
                      RuntimeError: httpcore.WriteError}):  # uvloop: write on a closed pipe
            async with asyncio.timeout(timeout):
                self._writer.write(buffer)
                await self._writer.drain()

    async def aclose(self) -> None:
        self._writer.close()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        with _mapped({TimeoutError: httpcore.ConnectTimeout, OSError: httpcore.ConnectError}):
            async with asyncio.timeout(timeout):
                await self._writer.start_tls(ssl_context, server_hostname=server_hostname)
        return self

    def get_extra_info(self, info: str) -> Any:
        if info == "is_readable":
            # An idle HTTP/1.1 connection that has anything to read was hung up by the server.
            return (self._reader.at_eof() or self._reader.exception() is not None
                    or bool(getattr(self._reader, "_buffer", b"")))
        if info == "ssl_object":
            return self._writer.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._writer.get_extra_info("sockname")
        if info == "server_addr":
            return self._writer.get_extra_info("peername")
        if info == "socket":
            return self._writer.get_extra_info("socket")
        return None


class FlowControlledBackend(httpcore.AsyncNetworkBackend):
    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: Iterable[SocketOption] | None = None,
                          ) -> httpcore.AsyncNetworkStream:
        local = (local_address, 0) if local_address else None
        with _mapped({TimeoutError: httpcore.ConnectTimeout, OSError: httpcore.ConnectError}):
            async with asyncio.timeout(timeout):
                reader, writer = await asyncio.open_connection(host, port, local_addr=local,
                                                               limit=READ_LIMIT)
        sock: socket.socket | None = writer.get_extra_info("socket")
        if sock is not None:
            for option in socket_options or ():
                sock.setsockopt(*option)
        return FlowControlledStream(reader, writer)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


def upstream_transport(limits: httpx.Limits) -> httpx.AsyncHTTPTransport:
    """httpx's transport, with the connection pool built over the flow-controlled backend."""
    transport = httpx.AsyncHTTPTransport(limits=limits)
    # httpx takes no network backend of its own; its pool is swapped for an identical one
    # that has one (the same settings httpx would give it).
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=httpx.create_ssl_context(),
        max_connections=limits.max_connections,
        max_keepalive_connections=limits.max_keepalive_connections,
        keepalive_expiry=limits.keepalive_expiry,
        network_backend=FlowControlledBackend(),
    )
    return transport


class UpstreamClient(httpx.AsyncClient):
    """One upstream's client: the flow-controlled pool, no cookie jar to speak of, and a short
    path for the small calls of the API.

    The client is shared by every customer's calls to that upstream, so a cookie the upstream
    sets for one call (a session, a load balancer's stickiness) must not ride along on the
    next customer's: the jar's policy refuses every cookie.
    """

    def __init__(self, limits: httpx.Limits) -> None:
        self.pool_transport = upstream_transport(limits)
        refuse_all = http.cookiejar.CookieJar(
            policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
        super().__init__(transport=self.pool_transport, follow_redirects=True,
                         cookies=refuse_all)

    async def exchange(self, request: httpx.Request) -> httpx.Response:
        """Send a small request and read its whole answer, straight through the pool.

        The client's own layers (auth flows, cookies, event hooks, redirects) cost about a
        third of a small call's CPU, and the API's calls use none of them: the key is a header
        the request already carries and cookies are refused. Should an upstream answer with a
        redirect (which means it did nothing with the request), the request goes through
        ``send`` instead, which asks again and follows it.
        """
        response = await self.pool_transport.handle_async_request(request)
        response.request = request
        try:
            await response.aread()
        finally:
            await response.aclose()
        if response.has_redirect_location:
            return await self.send(request)
        return response
