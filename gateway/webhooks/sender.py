"""One delivery attempt: the signed POST, its limits, and what its answer means.

Each attempt is signed when it is made (the SDK refuses a timestamp five minutes old) under
the event's one ``webhook-id``. Redirects are not followed: a receiver that moved says so
with a 3xx, and following it would let a public URL lead the gateway to a private one.

The POST goes through aiohttp rather than httpx, which the rest of the gateway uses: one
delivery is one small request, and on a 2-core test machine httpx spent about 3 ms of CPU
on each (request and response models, the pool's scan of its connections, anyio streams)
where aiohttp spends 0.3 ms, most of its parser being C. At thousands of events that was
the delivery worker's main cost.
"""

from __future__ import annotations

import asyncio
import email.utils
import functools
import logging
import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum
from types import TracebackType

import aiohttp
import httpx

from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.safety import (
    GuardedResolver,
    Resolver,
    UnsafeWebhookURL,
    check_literal,
    parse_url,
    system_resolve,
)
from gateway.webhooks.signing import headers as signed_headers

USER_AGENT = "video-gateway-webhooks/1"
log = logging.getLogger("gateway.webhooks")


class Outcome(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    GIVE_UP = "give_up"


@dataclass(frozen=True)
class Attempt:
    outcome: Outcome
    status_code: int | None = None
    # For the operator's list of deliveries; never holds a secret or a signature.
    error: str | None = None
    retry_after_s: float | None = None
    response_excerpt: bytes = b""


class WebhookClient:
    """The connection pool deliveries share, kept alive between them.

    Guarded connections (only to addresses ``GuardedResolver`` checked), no proxy from the
    environment (the proxy, not the receiver, would be what the check saw), and no cookie
    jar (one receiver's cookie is never sent to another's URL).
    """

    def __init__(self, config: WebhooksConfig, resolve: Resolver,
                 ssl_context: ssl.SSLContext | None) -> None:
        connector = aiohttp.TCPConnector(
            limit=config.concurrency, keepalive_timeout=5.0,
            # Each new connection asks the guarded resolver, so a changed DNS answer is
            # checked again; kept-alive connections go on to the address already checked.
            use_dns_cache=False, resolver=GuardedResolver(config, resolve),
            ssl=ssl_context or httpx.create_ssl_context())
        self.session = aiohttp.ClientSession(
            connector=connector, cookie_jar=aiohttp.DummyCookieJar(), trust_env=False,
            timeout=aiohttp.ClientTimeout(total=config.timeout_s,
                                          connect=config.connect_timeout_s),
            # Identity, so the excerpt's bound is a bound on what is read and not on what a
            # compressed answer inflates to.
            auto_decompress=False,
            headers={"user-agent": USER_AGENT, "accept-encoding": "identity"})

    async def aclose(self) -> None:
        await self.session.close()

    async def __aenter__(self) -> WebhookClient:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.aclose()


def webhook_client(config: WebhooksConfig, *, resolve: Resolver = system_resolve,
                   ssl_context: ssl.SSLContext | None = None) -> WebhookClient:
    """The client deliveries share; made on the event loop that sends them."""
    return WebhookClient(config, resolve, ssl_context)


async def deliver(client: WebhookClient, url: str, msg_id: str, body: bytes,
                  secrets: Sequence[str], config: WebhooksConfig, *,
                  clock: Callable[[], float] = time.time) -> Attempt:
    """Send the event once and say whether it arrived, may be tried again, or never will."""
    try:
        _check(url, config)
        headers = signed_headers(msg_id, int(clock()), body, secrets)
        async with asyncio.timeout(config.timeout_s):
            status, answer, excerpt = await _post(client, url, body, headers,
                                                  config.max_response_bytes)
    except UnsafeWebhookURL as exc:
        return Attempt(Outcome.GIVE_UP, error=exc.message)
    except TimeoutError:  # aiohttp's own timeouts are TimeoutErrors too
        return Attempt(Outcome.RETRY, error=f"no answer within {config.timeout_s:g}s")
    except aiohttp.InvalidURL:  # a host aiohttp refuses to connect to, "127.1" say
        return Attempt(Outcome.GIVE_UP, error="webhook_url is not a valid URL")
    except (aiohttp.ClientError, OSError) as exc:
        return Attempt(Outcome.RETRY, error=_describe(exc))
    log.debug("webhook attempt answered", extra={"event_id": msg_id, "status": status})
    return classify(status, answer, excerpt, now=clock(), cap_s=config.backoff_cap_s)


@functools.lru_cache(maxsize=4096)
def _check(url: str, config: WebhooksConfig) -> None:
    """The URL's form, and its host if an IP address: the same every time for one URL (a
    refusal, raised, is not cached). Parsing it costs as much as signing the event."""
    check_literal(parse_url(url, config).host, config)


async def _post(client: WebhookClient, url: str, body: bytes, headers: dict[str, str],
                limit: int) -> tuple[int, Mapping[str, str], bytes]:
    """The answer's status, headers and at most ``limit`` bytes of its body; the rest is
    never read (the connection is closed instead of drained)."""
    async with client.session.post(url, data=body, headers=headers,
                                   allow_redirects=False) as response:
        excerpt = b""
        while len(excerpt) < limit:
            chunk = await response.content.read(limit - len(excerpt))
            if not chunk:
                break
            excerpt += chunk
        return response.status, response.headers, excerpt


def classify(status: int, headers: Mapping[str, str], excerpt: bytes = b"", *, now: float,
             cap_s: float) -> Attempt:
    if 200 <= status < 300:
        return Attempt(Outcome.DELIVERED, status, response_excerpt=excerpt)
    if 300 <= status < 400:
        return Attempt(Outcome.GIVE_UP, status, f"HTTP {status}: redirects are not followed",
                       response_excerpt=excerpt)
    if status in (408, 429) or 500 <= status < 600:
        wait = retry_after(headers.get("retry-after"), now=now, cap_s=cap_s)
        return Attempt(Outcome.RETRY, status, f"HTTP {status}", wait, excerpt)
    return Attempt(Outcome.GIVE_UP, status, f"HTTP {status}", response_excerpt=excerpt)


def retry_after(value: str | None, *, now: float, cap_s: float) -> float | None:
    """Seconds a Retry-After asks for (delta-seconds or an HTTP date), within [0, cap_s]."""
    if value is None:
        return None
    value = value.strip()
    if value.isdigit():
        seconds = float(value)
    else:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # "-0000": HTTP dates are in GMT all the same
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    return min(max(seconds, 0.0), cap_s)


def _describe(exc: aiohttp.ClientError | OSError) -> str:
    name = "ConnectError" if isinstance(exc, aiohttp.ClientConnectorError) else type(exc).__name__
    return f"{name}: {str(exc) or type(exc).__name__}"[:300]
