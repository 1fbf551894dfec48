"""Slow and greedy clients on raw sockets: a deadline for headers, one for bodies, and a cap.

A client that connects and sends nothing, half a header or a Content-Length and then too few
bytes must lose its connection within the configured bound, be told 408 when nothing else was
said yet, and cost nothing; past ``server.max_connections`` a request gets a 503 envelope.
"""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator

import pytest

from tests.support.servers import Gateway, Simulator, base_config, upstream

HEADER_TIMEOUT_S = 1.0
BODY_TIMEOUT_S = 1.5
MAX_CONNECTIONS = 4
# Scheduling slack on a loaded machine: the bound plus this is still far from "never".
SLACK_S = 2.0


@pytest.fixture(scope="module")
def strict_gateway(tmp_path_factory: pytest.TempPathFactory,
                   simulator: Simulator) -> Iterator[Gateway]:
    server = {"header_timeout_s": HEADER_TIMEOUT_S, "body_timeout_s": BODY_TIMEOUT_S,
              "max_connections": MAX_CONNECTIONS}
    config = base_config([upstream("primary", simulator, ["official"])], server=server)
    gw = Gateway(tmp_path_factory.mktemp("slow-clients"), config).start()
    yield gw
    gw.stop()


def _connect(gateway: Gateway) -> socket.socket:
    return socket.create_connection(("127.0.0.1", gateway.port), timeout=5)


def _until_closed(sock: socket.socket, wait_s: float) -> tuple[bytes, float | None]:
    """Everything the server sends, and how long until it closed (None: still open)."""
    started = time.monotonic()
    received = b""
    while (left := started + wait_s - time.monotonic()) > 0:
        readable, _, _ = select.select([sock], [], [], left)
        if not readable:
            break
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            chunk = b""
        if not chunk:
            return received, time.monotonic() - started
        received += chunk
    return received, None


def _response(raw: bytes) -> tuple[int, dict[str, str], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines)
    return int(status_line.split()[1]), headers, body


def _assert_timed_out(raw: bytes, closed_after: float | None, bound_s: float) -> None:
    assert closed_after is not None, "the connection is still open past the bound"
    assert bound_s * 0.8 <= closed_after <= bound_s + SLACK_S
    status, headers, body = _response(raw)
    assert status == 408
    assert headers["connection"] == "close"
    assert json.loads(body)["error"]["code"] == "request_timeout"


class TestHeaderDeadline:
    def test_a_connection_that_sends_nothing_is_closed(self, strict_gateway: Gateway) -> None:
        with _connect(strict_gateway) as sock:
            raw, closed_after = _until_closed(sock, HEADER_TIMEOUT_S + SLACK_S)
        _assert_timed_out(raw, closed_after, HEADER_TIMEOUT_S)

    def test_half_a_header_line_is_cut_off(self, strict_gateway: Gateway) -> None:
        with _connect(strict_gateway) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\nX-Half: abc")
            raw, closed_after = _until_closed(sock, HEADER_TIMEOUT_S + SLACK_S)
        _assert_timed_out(raw, closed_after, HEADER_TIMEOUT_S)

    def test_trickling_bytes_does_not_extend_the_deadline(self, strict_gateway: Gateway) -> None:
        with _connect(strict_gateway) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nX-Pad: ")
            started = time.monotonic()
            raw, closed_after = b"", None
            while closed_after is None and time.monotonic() - started < 3 * HEADER_TIMEOUT_S:
                try:
                    sock.sendall(b"a")
                except (BrokenPipeError, ConnectionResetError):
                    pass
                chunk, closed = _until_closed(sock, 0.2)
                raw += chunk
                closed_after = None if closed is None else time.monotonic() - started
        _assert_timed_out(raw, closed_after, HEADER_TIMEOUT_S)

    def test_each_request_on_a_kept_alive_connection_has_its_own_deadline(
            self, strict_gateway: Gateway) -> None:
        with _connect(strict_gateway) as sock:
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n")
            first, _ = _until_closed(sock, 0.5)
            assert _response(first)[0] == 200
            sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: gat")
            raw, closed_after = _until_closed(sock, HEADER_TIMEOUT_S + SLACK_S)
        _assert_timed_out(raw, closed_after, HEADER_TIMEOUT_S)


class TestBodyDeadline:
    def test_a_stalled_body_is_cut_off_and_nothing_is_charged(
            self, strict_gateway: Gateway, simulator: Simulator) -> None:
        token_id, token = strict_gateway.create_token(balance_usd="5")
        creates_before = simulator.stats()["creates"]
        body = json.dumps({"prompt": "a slow upload", "model": "sora-2", "seconds": "4"}).encode()
        head = (f"POST /v1/videos HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")

        with _connect(strict_gateway) as sock:
            sock.sendall(head.encode() + body[: len(body) // 2])
            raw, closed_after = _until_closed(sock, BODY_TIMEOUT_S + SLACK_S)

        _assert_timed_out(raw, closed_after, BODY_TIMEOUT_S)
        after = strict_gateway.token(token_id)
        assert (after["balance_usd"], after["held_usd"]) == ("5.000000", "0.000000")
        assert [entry["kind"] for entry in strict_gateway.ledger(token_id)] == ["topup"]
        assert simulator.stats()["creates"] == creates_before
        assert "Traceback" not in strict_gateway.logs()
        assert '"phase": "body"' in strict_gateway.logs()

    def test_an_upload_sent_in_pieces_within_the_deadline_goes_through(
            self, strict_gateway: Gateway) -> None:
        _, token = strict_gateway.create_token(balance_usd="5")
        body = json.dumps({"prompt": "pieces [never]", "model": "sora-2",
                           "seconds": "4"}).encode()
        head = (f"POST /v1/videos HTTP/1.1\r\nHost: gateway\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
                "Connection: close\r\n\r\n")

        with _connect(strict_gateway) as sock:
            sock.sendall(head.encode())
            for start in range(0, len(body), 20):
                time.sleep(0.05)
                sock.sendall(body[start : start + 20])
            raw, closed_after = _until_closed(sock, 10)

        assert closed_after is not None
        status, _, answer = _response(raw)
        assert status == 200, answer
        assert json.loads(answer)["status"] in ("queued", "in_progress")


class TestConnectionCap:
    def test_a_request_past_the_cap_gets_503_until_connections_close(
            self, strict_gateway: Gateway) -> None:
        request = b"GET /healthz HTTP/1.1\r\nHost: gateway\r\n\r\n"
        held: list[socket.socket] = []
        try:
            for _ in range(MAX_CONNECTIONS):  # each answered, then kept alive, idle
                held.append(sock := _connect(strict_gateway))
                sock.sendall(request)
                assert _response(_until_closed(sock, 0.2)[0])[0] == 200
            with _connect(strict_gateway) as extra:
                extra.sendall(request)
                raw, closed_after = _until_closed(extra, 5)
        finally:
            for sock in held:
                sock.close()

        status, headers, body = _response(raw)
        assert status == 503
        assert headers["retry-after"] == "1"
        assert json.loads(body)["error"]["code"] == "overloaded"
        assert closed_after is not None, "a refused connection is closed, not kept"
        time.sleep(0.2)  # the server notices the closes
        with _connect(strict_gateway) as sock:
            sock.sendall(request)
            assert _response(_until_closed(sock, 2)[0])[0] == 200
