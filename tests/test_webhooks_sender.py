"""One delivery attempt against real receivers on loopback, and what its answer means."""

from __future__ import annotations

import asyncio
import email.utils
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import httpx
import pytest

from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.sender import (
    Attempt,
    Outcome,
    classify,
    deliver,
    retry_after,
    webhook_client,
)
from gateway.webhooks.signing import new_secret
from tests.support.servers import QuietHandler, ThreadedServer, free_port
from tests.support.webhooks import Received, Receiver, Reply, send_once

LOCAL = WebhooksConfig(allow_http=True, allow_private=True, connect_timeout_s=1.0,
                       timeout_s=1.0)
BODY = b'{"id":"evt_1","object":"event","type":"video.completed","created_at":1,"data":{}}'


def attempt_against(*replies: Reply,
                    config: WebhooksConfig = LOCAL) -> tuple[Attempt, list[Received]]:
    with Receiver(replies) as receiver:
        attempt = send_once(receiver.url + "/hook", BODY, [new_secret()], config)
    return attempt, receiver.received


class TestAnswers:
    @pytest.mark.parametrize("status", [200, 201, 202, 204, 299])
    def test_a_2xx_is_delivered(self, status: int) -> None:
        attempt, received = attempt_against(Reply(status, body=b"thanks"))
        assert attempt.outcome is Outcome.DELIVERED
        assert attempt.status_code == status
        assert len(received) == 1

    @pytest.mark.parametrize("status", [500, 502, 503, 504, 408, 429])
    def test_a_server_error_a_timeout_or_a_rate_limit_is_retried(self, status: int) -> None:
        attempt, _ = attempt_against(Reply(status, body=b"busy"))
        assert (attempt.outcome, attempt.status_code, attempt.error) == (
            Outcome.RETRY, status, f"HTTP {status}")
        assert attempt.response_excerpt == b"busy"

    def test_a_retry_after_is_passed_on(self) -> None:
        attempt, _ = attempt_against(Reply(429, {"Retry-After": "120"}))
        assert (attempt.outcome, attempt.retry_after_s) == (Outcome.RETRY, 120.0)

    @pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
    def test_another_4xx_gives_up(self, status: int) -> None:
        attempt, _ = attempt_against(Reply(status))
        assert (attempt.outcome, attempt.status_code) == (Outcome.GIVE_UP, status)

    @pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
    def test_a_redirect_gives_up_and_its_target_is_never_asked(self, status: int) -> None:
        with Receiver() as target:
            attempt, received = attempt_against(
                Reply(status, {"Location": target.url + "/moved"}))
        assert (attempt.outcome, attempt.status_code) == (Outcome.GIVE_UP, status)
        assert "redirect" in (attempt.error or "")
        assert len(received) == 1
        assert target.received == []


class TestTransportFailures:
    def test_a_receiver_slower_than_the_timeout_is_retried_within_it(self) -> None:
        started = time.monotonic()
        attempt, received = attempt_against(Reply(200, delay_s=3.0))
        elapsed = time.monotonic() - started
        assert attempt.outcome is Outcome.RETRY
        assert attempt.error == "no answer within 1s"
        assert len(received) == 1
        assert elapsed < 2.0

    def test_a_receiver_trickling_its_answer_is_cut_at_the_total_timeout(self) -> None:
        """Each byte arrives within the read timeout; the attempt as a whole does not."""
        server = ThreadedServer(Trickler)
        server.start()
        try:
            started = time.monotonic()
            attempt = send_once(server.url, BODY, [new_secret()], LOCAL)
            elapsed = time.monotonic() - started
        finally:
            server.stop()
        assert attempt.outcome is Outcome.RETRY
        assert elapsed < 2.0

    def test_a_refused_connection_is_retried(self) -> None:
        attempt = send_once(f"http://127.0.0.1:{free_port()}/hook", BODY, [new_secret()], LOCAL)
        assert attempt.outcome is Outcome.RETRY
        assert "ConnectError" in (attempt.error or "")

    def test_a_host_that_does_not_resolve_is_retried(self) -> None:
        async def nowhere(host: str, port: int) -> list[str]:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

        attempt = send_once("https://hooks.invalid/", BODY, [new_secret()], LOCAL,
                            resolve=nowhere)
        assert attempt.outcome is Outcome.RETRY


class Trickler(QuietHandler):
    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", "100")
        self.end_headers()
        try:
            for _ in range(100):
                self.wfile.write(b".")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            self.close_connection = True


class Flood(QuietHandler):
    """Answers with a body far larger than anyone should read, counting what it got out."""

    sent: ClassVar[list[int]] = []
    done = threading.Event()
    size = 256 * 1024 * 1024

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers["content-length"]))
        self.send_response(200)
        self.send_header("content-length", str(self.size))
        self.end_headers()
        chunk, total = b"x" * 65536, 0
        try:
            while total < self.size:
                self.wfile.write(chunk)
                total += len(chunk)
        except OSError:
            self.close_connection = True
        finally:
            Flood.sent.append(total)
            Flood.done.set()


@pytest.fixture
def flood() -> Iterator[ThreadedServer]:
    Flood.sent.clear()
    Flood.done.clear()
    server = ThreadedServer(Flood)
    server.start()
    yield server
    server.stop()


class TestResponseBody:
    def test_only_the_excerpt_of_a_huge_answer_is_read(self, flood: ThreadedServer) -> None:
        config = LOCAL.model_copy(update={"timeout_s": 5.0})
        attempt = send_once(flood.url, BODY, [new_secret()], config)
        assert attempt.outcome is Outcome.DELIVERED
        assert attempt.response_excerpt == b"x" * 4096
        assert Flood.done.wait(10)
        # What the server got out is what the socket buffers held when the sender hung up.
        assert Flood.sent[0] < Flood.size // 8

    def test_the_excerpt_bound_is_configurable(self) -> None:
        config = LOCAL.model_copy(update={"max_response_bytes": 10})
        with Receiver([Reply(500, body=b"0123456789abcdef")]) as receiver:
            attempt = send_once(receiver.url, BODY, [new_secret()], config)
        assert attempt.response_excerpt == b"0123456789"


class TestSecrecy:
    def test_no_log_line_carries_the_secret(self, caplog: pytest.LogCaptureFixture) -> None:
        secret = new_secret()
        caplog.set_level(logging.DEBUG)
        with Receiver([Reply(500)]) as receiver:
            send_once(receiver.url, BODY, [secret], LOCAL)
            send_once(f"http://127.0.0.1:{free_port()}/", BODY, [secret], LOCAL)
        assert caplog.records  # the attempts were logged
        assert secret not in caplog.text
        assert secret.removeprefix("whsec_") not in caplog.text


class TestClient:
    def test_a_receivers_cookie_is_never_sent_back(self) -> None:
        """Deliveries to every token's URL share one client."""
        setting = Reply(200, {"Set-Cookie": "session=one; Path=/"})

        async def twice(url: str) -> None:
            async with webhook_client(LOCAL) as client:
                for _ in range(2):
                    await deliver(client, url, "evt_1", BODY, [new_secret()], LOCAL)

        with Receiver([setting, setting]) as receiver:
            asyncio.run(twice(receiver.url))
        assert [request.headers.get("cookie") for request in receiver.received] == [None, None]

    def test_proxies_from_the_environment_are_not_used(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A proxy would be the host the check saw, not the receiver."""
        dead = f"http://127.0.0.1:{free_port()}"
        for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "all_proxy"):
            monkeypatch.setenv(name, dead)
        with Receiver() as receiver:
            attempt = send_once(receiver.url, BODY, [new_secret()], LOCAL)
        assert attempt.outcome is Outcome.DELIVERED
        assert receiver.received[0].headers["user-agent"].startswith("video-gateway")


class TestClassify:
    NOW = 1_700_000_000.0

    def test_statuses_outside_http_give_up(self) -> None:
        assert classify(600, httpx.Headers(), now=self.NOW, cap_s=60).outcome is Outcome.GIVE_UP

    def test_a_retry_after_date_is_seconds_from_now(self) -> None:
        date = email.utils.formatdate(self.NOW + 90, usegmt=True)
        assert retry_after(date, now=self.NOW, cap_s=3600) == 90.0

    @pytest.mark.parametrize(("value", "expected"), [
        (None, None), ("soon", None), ("", None), ("0", 0.0), (" 30 ", 30.0),
        ("999999", 3600.0), ("Thu, 01 Jan 1970 00:00:00 GMT", 0.0),
    ])
    def test_retry_after_is_bounded(self, value: str | None, expected: float | None) -> None:
        assert retry_after(value, now=self.NOW, cap_s=3600) == expected
