"""Where webhooks may go: the URL policy when a URL is set, and again at every connection."""

from __future__ import annotations

import asyncio
import ipaddress
import shutil
import ssl
import subprocess
import time
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.safety import (
    Resolver,
    UnsafeWebhookURL,
    check_url,
    is_public,
    parse_url,
    system_resolve,
)
from gateway.webhooks.sender import Outcome
from gateway.webhooks.signing import new_secret
from tests.support.webhooks import Receiver, send_once

STRICT = WebhooksConfig()
HTTP = WebhooksConfig(allow_http=True)
LOCAL = WebhooksConfig(allow_http=True, allow_private=True)
PUBLIC = "93.184.216.34"


def fixed(*addresses: str) -> Resolver:
    """A resolver that answers every name with these addresses."""

    async def resolve(host: str, port: int) -> list[str]:
        return list(addresses)

    return resolve


def check(url: str, config: WebhooksConfig = STRICT, resolve: Resolver = system_resolve) -> str:
    return str(asyncio.run(check_url(url, config, resolve)))


class TestAddresses:
    @pytest.mark.parametrize("address", [
        "127.0.0.1", "127.1.2.3", "::1", "0.0.0.0", "::", "10.0.0.5", "172.16.3.4",
        "192.168.1.1", "100.64.0.1", "169.254.169.254", "fe80::1", "fc00::1", "fd12::1",
        "224.0.0.1", "239.255.255.250", "ff02::1", "240.0.0.1", "255.255.255.255",
        "198.18.0.1", "192.0.2.1", "2001:db8::1",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
        "2002:7f00:1::", "2002:a9fe:a9fe::", "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe",
    ])
    def test_a_non_public_address_is_refused(self, address: str) -> None:
        assert not is_public(ipaddress.ip_address(address))

    @pytest.mark.parametrize("address", [
        PUBLIC, "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8",
        "2002:0808:0808::",
    ])
    def test_a_public_address_is_allowed(self, address: str) -> None:
        assert is_public(ipaddress.ip_address(address))


class TestWhenSet:
    @pytest.mark.parametrize("url", [
        "https://127.0.0.1/hook", "https://[::1]/hook", "https://10.1.2.3/",
        "https://169.254.169.254/latest/meta-data/", "https://224.0.0.1/",
        "https://[::ffff:127.0.0.1]/", "https://2130706433/", "https://0x7f.1/",
        "https://localhost/hook",
    ])
    def test_a_url_reaching_a_non_public_address_is_refused(self, url: str) -> None:
        with pytest.raises(UnsafeWebhookURL, match="private, loopback or link-local"):
            check(url)

    def test_allow_private_lets_it_through(self) -> None:
        assert check("https://127.0.0.1:8443/hook", WebhooksConfig(allow_private=True)) == (
            "https://127.0.0.1:8443/hook")
        assert check("https://localhost/hook", WebhooksConfig(allow_private=True))

    def test_one_private_address_among_public_ones_is_refused(self) -> None:
        with pytest.raises(UnsafeWebhookURL):
            check("https://hooks.example.com/", resolve=fixed(PUBLIC, "10.0.0.1"))
        assert check("https://hooks.example.com/", resolve=fixed(PUBLIC, "8.8.8.8"))

    def test_http_is_refused_unless_allowed(self) -> None:
        with pytest.raises(UnsafeWebhookURL, match="https"):
            check("http://hooks.example.com/", resolve=fixed(PUBLIC))
        assert check("http://hooks.example.com/", HTTP, resolve=fixed(PUBLIC))

    @pytest.mark.parametrize(("url", "reason"), [
        ("ftp://hooks.example.com/", "https"),
        ("file:///etc/passwd", "https"),
        ("hooks.example.com/path", "https"),
        ("https://user:pass@hooks.example.com/", "credentials"),
        ("https://token@hooks.example.com/", "credentials"),
        ("https:///path", "host"),
        ("https://hooks.example.com/" + "a" * 2048, "longer than 2048"),
        ("https://exa mple.com/", "invalid host"),
        ("https://[zz]/", "not a valid URL"),
        ("https://hooks.example.com:0/", "invalid port"),
        ("https://hooks.example.com:65536/", "invalid port"),
    ])
    def test_a_malformed_url_is_refused(self, url: str, reason: str) -> None:
        with pytest.raises(UnsafeWebhookURL, match=reason):
            parse_url(url, STRICT)

    def test_a_host_that_does_not_resolve_is_refused(self) -> None:
        with pytest.raises(UnsafeWebhookURL, match="does not resolve"):
            check("https://hooks.invalid/")

    def test_a_resolver_that_never_answers_is_not_waited_for(self) -> None:
        async def hanging(host: str, port: int) -> list[str]:
            await asyncio.sleep(60)
            return [PUBLIC]

        config = WebhooksConfig(connect_timeout_s=0.2)
        started = time.monotonic()
        with pytest.raises(UnsafeWebhookURL, match="does not resolve"):
            check("https://hooks.example.com/", config, resolve=hanging)
        assert time.monotonic() - started < 2

    def test_other_schemes_are_refused_with_http_allowed(self) -> None:
        with pytest.raises(UnsafeWebhookURL, match="http or https"):
            parse_url("ftp://hooks.example.com/", HTTP)

    def test_the_refusal_is_a_400_naming_the_field(self) -> None:
        with pytest.raises(UnsafeWebhookURL) as refused:
            check("https://127.0.0.1/")
        assert refused.value.status == 400
        assert refused.value.body()["error"]["param"] == "webhook_url"
        assert refused.value.body()["error"]["type"] == "invalid_request_error"


class TestWhenSent:
    def test_a_loopback_url_is_refused_again_and_nothing_is_sent(self) -> None:
        with Receiver() as receiver:
            attempt = send_once(receiver.url, b"{}", [new_secret()], HTTP)
        assert attempt.outcome is Outcome.GIVE_UP
        assert "private, loopback or link-local" in (attempt.error or "")
        assert receiver.received == []

    def test_a_name_that_resolves_elsewhere_since_it_was_set_is_refused(self) -> None:
        """The DNS answer changed between the check and the send (rebinding)."""
        answers = iter([[PUBLIC], ["127.0.0.1"]])

        async def rebinding(host: str, port: int) -> list[str]:
            return next(answers)

        with Receiver() as receiver:
            url = f"http://hooks.example.com:{receiver.port}/hook"
            assert check(url, HTTP, resolve=rebinding) == url
            attempt = send_once(url, b"{}", [new_secret()], HTTP, resolve=rebinding)
        assert attempt.outcome is Outcome.GIVE_UP
        assert receiver.received == []

    def test_http_refused_since_the_url_was_set_gives_up(self) -> None:
        with Receiver() as receiver:
            attempt = send_once(receiver.url, b"{}", [new_secret()],
                                WebhooksConfig(allow_private=True))
        assert (attempt.outcome, attempt.error) == (
            Outcome.GIVE_UP, "webhook_url must be an https URL")
        assert receiver.received == []

    def test_the_connection_goes_to_the_checked_address_under_the_urls_name(self) -> None:
        """A name the system cannot resolve is reached through the checked address alone,
        with the Host header of the URL."""
        with Receiver() as receiver:
            url = f"http://hooks.example.com:{receiver.port}/hook"
            attempt = send_once(url, b"{}", [new_secret()], LOCAL, resolve=fixed("127.0.0.1"))
        assert attempt.outcome is Outcome.DELIVERED
        assert receiver.received[0].headers["host"] == f"hooks.example.com:{receiver.port}"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for hooks.example.com, made by the openssl command."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    folder = tmp_path_factory.mktemp("tls")
    cert, key = folder / "cert.pem", folder / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", str(key), "-out", str(cert), "-days", "1",
         "-subj", "/CN=hooks.example.com", "-addext", "subjectAltName=DNS:hooks.example.com"],
        check=True, capture_output=True)
    return cert, key


@pytest.fixture
def tls_receiver(certificate: tuple[Path, Path]) -> Iterator[tuple[Receiver, list[str]]]:
    """A receiver behind TLS that records the server name each client asked for (SNI)."""
    names: list[str] = []
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(*certificate)

    def record(sock: ssl.SSLObject, name: str | None, context: ssl.SSLContext) -> None:
        names.append(name or "")

    context.sni_callback = record
    receiver = Receiver()
    server: ThreadingHTTPServer = receiver._server
    server.socket = context.wrap_socket(server.socket, server_side=True)
    with receiver:
        yield receiver, names


class TestTls:
    def client_context(self, certificate: tuple[Path, Path]) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(certificate[0]))

    def test_the_pinned_connection_keeps_sni_and_verification_for_the_name(
            self, tls_receiver: tuple[Receiver, list[str]],
            certificate: tuple[Path, Path]) -> None:
        receiver, names = tls_receiver
        url = f"https://hooks.example.com:{receiver.port}/hook"
        attempt = send_once(url, b"{}", [new_secret()], WebhooksConfig(allow_private=True),
                            resolve=fixed("127.0.0.1"),
                            ssl_context=self.client_context(certificate))
        assert attempt.outcome is Outcome.DELIVERED
        assert names == ["hooks.example.com"]
        assert receiver.received[0].headers["host"] == f"hooks.example.com:{receiver.port}"

    def test_a_certificate_for_another_name_is_not_accepted(
            self, tls_receiver: tuple[Receiver, list[str]],
            certificate: tuple[Path, Path]) -> None:
        receiver, _ = tls_receiver
        url = f"https://other.example.com:{receiver.port}/hook"
        attempt = send_once(url, b"{}", [new_secret()], WebhooksConfig(allow_private=True),
                            resolve=fixed("127.0.0.1"),
                            ssl_context=self.client_context(certificate))
        assert attempt.outcome is Outcome.RETRY
        assert "CERTIFICATE_VERIFY_FAILED" in (attempt.error or "")
        assert receiver.received == []
