"""Where webhooks may go, checked when a URL is set and again on every connection.

A webhook URL is chosen by a token's holder, and the gateway then sends requests to it from
inside the operator's network: without a check, a URL naming a private or loopback address
(or a public name resolving to one) reaches services no customer should (SSRF). The check
runs when the URL is set, for a clear error, and at each connection, since DNS answers can
change in between. The connection goes to the very address that was checked, while the
Host header, TLS SNI and certificate verification keep the URL's host name (the HTTP client
connects to the addresses its resolver returns and verifies the certificate against the
URL's name), so no second lookup can slip another address in between the check and the
connect.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from collections.abc import Awaitable, Callable, Iterable

import httpx
from aiohttp.abc import AbstractResolver, ResolveResult

from gateway.errors import InvalidRequest
from gateway.webhooks.config import WebhooksConfig

Resolver = Callable[[str, int], Awaitable[list[str]]]
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
# A host as it goes on the wire: a DNS name (IDNs in their xn-- form) or an IP literal.
_HOST = re.compile(r"[A-Za-z0-9._:-]+")
PRIVATE = "webhook_url resolves to a private, loopback or link-local address"


class UnsafeWebhookURL(InvalidRequest):
    """A webhook URL the policy refuses; the message is meant for whoever set it."""

    def __init__(self, message: str) -> None:
        super().__init__(message, param="webhook_url")


async def system_resolve(host: str, port: int) -> list[str]:
    """The host's addresses, from the system resolver run off the event loop."""
    infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def parse_url(url: str, config: WebhooksConfig) -> httpx.URL:
    """The URL, if its form is acceptable: scheme, host, no credentials, bounded length."""
    if len(url) > config.max_url_length:
        raise UnsafeWebhookURL(f"webhook_url is longer than {config.max_url_length} characters")
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        raise UnsafeWebhookURL("webhook_url is not a valid URL") from None
    if config.allow_http and parsed.scheme not in ("https", "http"):
        raise UnsafeWebhookURL("webhook_url must be an http or https URL")
    if not config.allow_http and parsed.scheme != "https":
        raise UnsafeWebhookURL("webhook_url must be an https URL")
    if not parsed.host:
        raise UnsafeWebhookURL("webhook_url has no host")
    if not _HOST.fullmatch(parsed.raw_host.decode("ascii", "replace")):
        raise UnsafeWebhookURL("webhook_url has an invalid host")
    if parsed.port is not None and not 0 < parsed.port < 65536:
        raise UnsafeWebhookURL("webhook_url has an invalid port")
    if parsed.userinfo:
        raise UnsafeWebhookURL("webhook_url must not carry credentials")
    return parsed


def _embedded(ip: ipaddress.IPv6Address) -> Iterable[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to through a relay (6to4, Teredo); NAT64's
    prefix needs no such look, it lies in the reserved ::/8."""
    if ip.sixtofour is not None:
        yield ip.sixtofour
    if ip.teredo is not None:
        yield ip.teredo[1]


def is_public(ip: IPAddress) -> bool:
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:  # the IPv4 address itself, on a dual-stack socket
            return is_public(ip.ipv4_mapped)
        if not all(map(is_public, _embedded(ip))):
            return False
    # is_global alone lets multicast through; the flags are spelled out for the reader too.
    return ip.is_global and not (ip.is_private or ip.is_loopback or ip.is_link_local
                                 or ip.is_multicast or ip.is_reserved or ip.is_unspecified)


async def checked_addresses(host: str, port: int, config: WebhooksConfig,
                            resolve: Resolver = system_resolve) -> list[str]:
    """The host's addresses, refused unless every one of them is public (or private allowed).

    One private address among public ones is refused as well: which one a connection would
    take is up to the resolver's order, which whoever runs the DNS controls.
    Resolution failures are the caller's to translate (``OSError``).
    """
    addresses = await resolve(host, port)
    if not addresses:
        raise OSError(f"no address for {host}")
    if not config.allow_private:
        for address in addresses:
            if not is_public(ipaddress.ip_address(address)):
                raise UnsafeWebhookURL(PRIVATE)
    return addresses


async def check_url(url: str, config: WebhooksConfig,
                    resolve: Resolver = system_resolve) -> httpx.URL:
    """The check made when a URL is set: its form, and where its host resolves now."""
    parsed = parse_url(url, config)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        async with asyncio.timeout(config.connect_timeout_s):
            await checked_addresses(parsed.host, port, config, resolve)
    except OSError:  # TimeoutError included: a resolver that never answers
        raise UnsafeWebhookURL("webhook_url's host does not resolve") from None
    return parsed


def check_literal(host: str, config: WebhooksConfig) -> None:
    """Refuse a host that is an IP address the policy forbids.

    The HTTP client connects to an IP literal without asking its resolver, so a literal is
    checked here, before each attempt; a name is the resolver's (``GuardedResolver``).
    """
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        return
    if not config.allow_private and not is_public(ip):
        raise UnsafeWebhookURL(PRIVATE)


class GuardedResolver(AbstractResolver):
    """Resolves a name only to checked addresses, which the client then connects to."""

    def __init__(self, config: WebhooksConfig, resolve: Resolver = system_resolve) -> None:
        self._config = config
        self._resolve = resolve

    async def resolve(self, host: str, port: int = 0,
                      family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        # A TimeoutError or OSError reaches the sender as a failed connection (retried);
        # UnsafeWebhookURL as itself (given up).
        async with asyncio.timeout(self._config.connect_timeout_s):
            addresses = await checked_addresses(host, port, self._config, self._resolve)
        return [ResolveResult(hostname=host, host=address, port=port,
                              family=socket.AF_INET6 if ":" in address else socket.AF_INET,
                              proto=0, flags=socket.AI_NUMERICHOST)
                for address in addresses]

    async def close(self) -> None:
        return
