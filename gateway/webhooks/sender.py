"""One delivery attempt: the signed POST, its limits, and what its answer means.

Each attempt is signed when it is made (the SDK refuses a timestamp five minutes old) under
the event's one ``webhook-id``. Redirects are not followed: a receiver that moved says so
with a 3xx, and following it would let a public URL lead the gateway to a private one.
"""

from __future__ import annotations

import asyncio
import email.utils
import http.cookiejar
import ssl
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from enum import StrEnum

import httpcore
import httpx

from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.safety import (
    GuardedBackend,
    Resolver,
    UnsafeWebhookURL,
    parse_url,
    system_resolve,
)
from gateway.webhooks.signing import headers as signed_headers

USER_AGENT = "video-gateway-webhooks/1"


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


def webhook_client(config: WebhooksConfig, *, resolve: Resolver = system_resolve,
                   ssl_context: ssl.SSLContext | None = None) -> httpx.AsyncClient:
    """The client deliveries share: guarded connections, no proxy from the environment (the
    proxy, not the receiver, would be what the check saw), and no cookie jar (one receiver's
    cookie is never sent to another's URL)."""
    transport = httpx.AsyncHTTPTransport()
    # httpx takes no network backend of its own; its pool is swapped for one that has one.
    transport._pool = httpcore.AsyncConnectionPool(
        ssl_context=ssl_context or httpx.create_ssl_context(),
        max_connections=config.concurrency, max_keepalive_connections=config.concurrency,
        keepalive_expiry=5.0, network_backend=GuardedBackend(config, resolve),
    )
    refuse_all = http.cookiejar.CookieJar(
        policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[]))
    return httpx.AsyncClient(
        transport=transport, follow_redirects=False, trust_env=False, cookies=refuse_all,
        timeout=httpx.Timeout(config.timeout_s, connect=config.connect_timeout_s),
        # Identity, so the excerpt's bound is a bound on what is read and not on what a
        # compressed answer inflates to.
        headers={"user-agent": USER_AGENT, "accept-encoding": "identity"},
    )


async def deliver(client: httpx.AsyncClient, url: str, msg_id: str, body: bytes,
                  secrets: Sequence[str], config: WebhooksConfig, *,
                  clock: Callable[[], float] = time.time) -> Attempt:
    """Send the event once and say whether it arrived, may be tried again, or never will."""
    try:
        parse_url(url, config)
        headers = signed_headers(msg_id, int(clock()), body, secrets)
        async with asyncio.timeout(config.timeout_s):
            response, excerpt = await _post(client, url, body, headers,
                                            config.max_response_bytes)
    except UnsafeWebhookURL as exc:
        return Attempt(Outcome.GIVE_UP, error=exc.message)
    except (TimeoutError, httpx.TimeoutException):
        return Attempt(Outcome.RETRY, error=f"no answer within {config.timeout_s:g}s")
    except httpx.TransportError as exc:
        return Attempt(Outcome.RETRY, error=_describe(exc))
    return classify(response.status_code, response.headers, excerpt,
                    now=clock(), cap_s=config.backoff_cap_s)


async def _post(client: httpx.AsyncClient, url: str, body: bytes, headers: dict[str, str],
                limit: int) -> tuple[httpx.Response, bytes]:
    """The answer and at most ``limit`` bytes of its body; the rest is never read (the
    connection is closed instead of drained)."""
    async with client.stream("POST", url, content=body, headers=headers) as response:
        excerpt = b""
        if limit:
            async for chunk in response.aiter_raw():
                excerpt += chunk[: limit - len(excerpt)]
                if len(excerpt) >= limit:
                    break
        return response, excerpt


def classify(status: int, headers: httpx.Headers, excerpt: bytes = b"", *, now: float,
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


def _describe(exc: httpx.TransportError) -> str:
    detail = str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {detail}"[:300]
