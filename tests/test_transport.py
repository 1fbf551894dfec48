"""The upstream transport against real sockets: reuse, server hang-ups and large bodies.

Upstreams close idle keep-alive connections on their own schedule (uvicorn after 5 s, many
load balancers sooner). A pooled connection the server has hung up must be noticed before a
request is sent on it: a create written to a dead connection would come back as an ambiguous
failure (502, not retried) when nothing went wrong.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
import pytest

from gateway.upstreams.transport import UpstreamClient, upstream_transport

LIMITS = httpx.Limits(max_connections=4, max_keepalive_connections=4, keepalive_expiry=30)
BODY = b'{"ok": true}'


@asynccontextmanager
async def upstream(idle_close_s: float, body_bytes: int = 0,
                   heads: list[bytes] | None = None,
                   redirects: dict[bytes, bytes] | None = None) -> AsyncIterator[dict[str, int]]:
    """An HTTP/1.1 server that keeps connections alive but hangs up after ``idle_close_s``.

    Every answer sets a cookie; ``heads`` collects the request heads it received; a request
    for a path in ``redirects`` is sent on with a 307 (its body, if any, is read first).
    """
    seen = {"connections": 0, "requests": 0}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen["connections"] += 1
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), idle_close_s)
                except (TimeoutError, asyncio.IncompleteReadError):
                    return
                seen["requests"] += 1
                if heads is not None:
                    heads.append(head)
                length = next((int(line.split(b":")[1]) for line in head.split(b"\r\n")
                               if line.lower().startswith(b"content-length:")), 0)
                await reader.readexactly(length)
                path = head.split(b" ")[1]
                if redirects and path in redirects:
                    writer.write(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: %s\r\n"
                                 b"Content-Length: 0\r\n\r\n" % redirects[path])
                    await writer.drain()
                    continue
                body = b"\0" * body_bytes if body_bytes else BODY
                writer.write(b"HTTP/1.1 200 OK\r\nSet-Cookie: session=customer-one; Path=/\r\n"
                             b"Content-Length: %d\r\n\r\n" % len(body))
                writer.write(body)
                await writer.drain()
        finally:
            writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    seen["port"] = port
    try:
        yield seen
    finally:
        server.close()
        await server.wait_closed()


def run(coro: object) -> None:
    asyncio.run(coro)  # type: ignore[arg-type]


def test_a_connection_is_reused_while_the_server_keeps_it() -> None:
    async def main() -> None:
        async with upstream(idle_close_s=5) as seen, httpx.AsyncClient(
                transport=upstream_transport(LIMITS)) as client:
            for _ in range(5):
                response = await client.get(f"http://127.0.0.1:{seen['port']}/v1/videos/x")
                assert (response.status_code, response.content) == (200, BODY)
            assert (seen["connections"], seen["requests"]) == (1, 5)

    run(main())


def test_a_connection_the_server_hung_up_is_not_used_again() -> None:
    async def main() -> None:
        async with upstream(idle_close_s=0.2) as seen, httpx.AsyncClient(
                transport=upstream_transport(LIMITS)) as client:
            url = f"http://127.0.0.1:{seen['port']}/v1/videos"
            assert (await client.post(url, content=b"{}")).status_code == 200
            await asyncio.sleep(0.6)  # the server has closed the idle connection by now
            response = await client.post(url, content=b"{}")
            assert (response.status_code, response.content) == (200, BODY)
            assert (seen["connections"], seen["requests"]) == (2, 2)

    run(main())


def test_cookies_an_upstream_sets_are_never_sent_back() -> None:
    """The client is shared by all customers: one call's cookie must not ride on the next."""
    heads: list[bytes] = []

    async def main() -> None:
        async with upstream(idle_close_s=5, heads=heads) as seen, UpstreamClient(
                LIMITS) as client:
            url = f"http://127.0.0.1:{seen['port']}/v1/videos"
            first = await client.post(url, content=b"{}")
            assert first.headers["set-cookie"].startswith("session=")
            await client.exchange(httpx.Request("GET", f"{url}/x"))
            await client.get(f"{url}/y")
            assert len(client.cookies) == 0

    run(main())
    assert len(heads) == 3
    assert all(b"cookie" not in head.lower().replace(b"set-cookie", b"") for head in heads)


def test_exchange_reads_whole_answers_over_one_kept_connection() -> None:
    async def main() -> None:
        async with upstream(idle_close_s=5) as seen, UpstreamClient(LIMITS) as client:
            url = f"http://127.0.0.1:{seen['port']}/v1/videos"
            for n in range(5):
                request = httpx.Request("POST", url, json={"prompt": f"n{n}"})
                response = await client.exchange(request)
                assert (response.status_code, response.json()) == (200, {"ok": True})
                assert response.request is request
            assert (seen["connections"], seen["requests"]) == (1, 5)

    run(main())


def test_exchange_follows_a_redirect_with_the_same_body() -> None:
    """A redirect answer means the server did nothing with the request; ``send`` asks again."""
    heads: list[bytes] = []

    async def main() -> None:
        async with upstream(idle_close_s=5, heads=heads,
                            redirects={b"/v1/videos": b"/v2/videos"}) as seen, UpstreamClient(
                LIMITS) as client:
            request = httpx.Request("POST", f"http://127.0.0.1:{seen['port']}/v1/videos",
                                    json={"prompt": "moved"})
            response = await client.exchange(request)
            assert (response.status_code, response.json()) == (200, {"ok": True})

    run(main())
    assert [head.split(b" ")[:2] for head in heads] == [[b"POST", b"/v1/videos"]] * 2 + [
        [b"POST", b"/v2/videos"]]


def test_a_large_body_streams_whole_in_bounded_reads() -> None:
    size = 32 * 1024 * 1024

    async def main() -> None:
        async with upstream(idle_close_s=5, body_bytes=size) as seen, httpx.AsyncClient(
                transport=upstream_transport(LIMITS)) as client:
            url = f"http://127.0.0.1:{seen['port']}/v1/videos/x/content"
            async with client.stream("GET", url) as response:
                total, largest = 0, 0
                async for chunk in response.aiter_raw():
                    total += len(chunk)
                    largest = max(largest, len(chunk))
                    await asyncio.sleep(0)  # a consumer slower than the sender
            assert total == size
            assert largest <= 256 * 1024

    run(main())


def test_connection_refused_and_silence_map_to_httpx_errors() -> None:
    async def main() -> None:
        async with httpx.AsyncClient(transport=upstream_transport(LIMITS)) as client:
            async with upstream(idle_close_s=5) as seen:
                port = seen["port"]
            with pytest.raises(httpx.ConnectError):
                await client.get(f"http://127.0.0.1:{port}/", timeout=2)

            done = asyncio.Event()

            async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
                try:
                    await done.wait()
                finally:
                    writer.close()

            server = await asyncio.start_server(silent, "127.0.0.1", 0)
            port = server.sockets[0].getsockname()[1]
            try:
                with pytest.raises(httpx.ReadTimeout):
                    await client.get(f"http://127.0.0.1:{port}/", timeout=0.3)
            finally:
                done.set()
                server.close()
                await server.wait_closed()

    run(main())
