"""Webhook events and their signatures, checked by the verifier clients run: the SDK's."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Mapping

import pytest
from openai import InvalidWebhookSignatureError, OpenAI

from gateway.webhooks.config import WebhooksConfig
from gateway.webhooks.events import EventType, event_body, new_event_id
from gateway.webhooks.sender import Outcome
from gateway.webhooks.signing import headers, live_secrets, new_secret, sign
from tests.support.webhooks import Received, Receiver, send_once

LOCAL = WebhooksConfig(allow_http=True, allow_private=True)
DAY = 86400


def verify(secret: str, body: bytes, sent: Mapping[str, str]) -> None:
    with OpenAI(api_key="x", webhook_secret=secret) as client:
        client.webhooks.verify_signature(body, dict(sent))


def delivered(secrets: list[str], body: bytes, msg_id: str = "evt_test",
              clock: Callable[[], float] = time.time) -> Received:
    with Receiver() as receiver:
        attempt = send_once(receiver.url + "/hooks", body, secrets, LOCAL, msg_id=msg_id,
                            clock=clock)
    assert attempt.outcome is Outcome.DELIVERED
    (request,) = receiver.received
    return request


class TestSecrets:
    def test_a_secret_is_whsec_and_32_random_bytes(self) -> None:
        secrets = {new_secret() for _ in range(100)}
        assert len(secrets) == 100
        for secret in secrets:
            assert secret.startswith("whsec_")
            assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32

    @pytest.mark.parametrize("secret", [
        "", "secret", "whsec_", "whsec_not*base64", "whsec_" + base64.b64encode(b"x" * 16).decode(),
    ])
    def test_a_malformed_secret_signs_nothing(self, secret: str) -> None:
        with pytest.raises(ValueError, match="webhook secret"):
            sign([secret], "evt_1", 1, b"{}")

    @pytest.mark.parametrize("msg_id", ["", "evt.1", "evt 1", "evt\r\n1"])
    def test_an_id_that_could_shift_the_signed_content_is_refused(self, msg_id: str) -> None:
        with pytest.raises(ValueError, match="webhook id"):
            sign([new_secret()], msg_id, 1, b"{}")


class TestEvents:
    @pytest.mark.parametrize("event_type", ["video.completed", "video.failed"])
    def test_a_delivered_event_verifies_and_unwraps_with_the_sdk(
            self, event_type: EventType) -> None:
        secret = new_secret()
        event_id, created_at = new_event_id(), int(time.time()) - 5
        body = event_body(event_id, event_type, "video_abc123", created_at)
        request = delivered([secret], body, msg_id=event_id)

        assert request.method == "POST"
        assert request.path == "/hooks"
        assert request.body == body
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"] == event_id
        verify(secret, request.body, request.headers)
        with OpenAI(api_key="x", webhook_secret=secret) as client:
            event = client.webhooks.unwrap(request.body, request.headers)
        # This SDK's union of event classes names no video event, so unwrap picks another
        # class of the same shape: the fields are what a receiver reads.
        assert event.to_dict() == {"id": event_id, "object": "event", "type": event_type,
                                   "created_at": created_at, "data": {"id": "video_abc123"}}

    def test_the_body_is_openais_event_shape_and_nothing_more(self) -> None:
        body = json.loads(event_body("evt_1", "video.failed", "video_1", 1700000000))
        assert body == {"id": "evt_1", "object": "event", "type": "video.failed",
                        "created_at": 1700000000, "data": {"id": "video_1"}}

    def test_an_event_type_outside_the_contract_is_refused(self) -> None:
        with pytest.raises(ValueError, match="event type"):
            event_body("evt_1", "video.deleted", "video_1", 1)  # type: ignore[arg-type]

    def test_event_ids_are_unique(self) -> None:
        ids = {new_event_id() for _ in range(1000)}
        assert len(ids) == 1000
        assert all(id_.startswith("evt_") for id_ in ids)


class TestVerification:
    def test_with_two_secrets_each_alone_verifies(self) -> None:
        new, old = new_secret(), new_secret()
        body = event_body("evt_1", "video.completed", "video_1", int(time.time()))
        request = delivered([new, old], body, msg_id="evt_1")

        assert [part[:3] for part in request.headers["webhook-signature"].split(" ")] == [
            "v1,", "v1,"]
        verify(new, request.body, request.headers)
        verify(old, request.body, request.headers)
        with pytest.raises(InvalidWebhookSignatureError):
            verify(new_secret(), request.body, request.headers)

    def test_a_wrong_secret_or_an_altered_body_fails(self) -> None:
        secret = new_secret()
        body = event_body("evt_1", "video.completed", "video_1", int(time.time()))
        request = delivered([secret], body)
        with pytest.raises(InvalidWebhookSignatureError):
            verify(new_secret(), request.body, request.headers)
        altered = request.body.replace(b"video_1", b"video_2")
        with pytest.raises(InvalidWebhookSignatureError):
            verify(secret, altered, request.headers)
        with pytest.raises(InvalidWebhookSignatureError):
            verify(secret, request.body, {**request.headers, "webhook-id": "evt_2"})

    def test_each_attempt_is_signed_at_its_own_time(self) -> None:
        """The SDK refuses a timestamp past its tolerance, so a retry must not reuse one."""
        secret = new_secret()
        body = event_body("evt_1", "video.completed", "video_1", int(time.time()))
        stale = delivered([secret], body, clock=lambda: time.time() - 301)
        with pytest.raises(InvalidWebhookSignatureError, match="too old"):
            verify(secret, stale.body, stale.headers)
        fresh = delivered([secret], body)
        verify(secret, fresh.body, fresh.headers)
        assert fresh.headers["webhook-id"] == stale.headers["webhook-id"]
        assert abs(int(fresh.headers["webhook-timestamp"]) - time.time()) < 5

    def test_headers_name_the_id_timestamp_and_signature(self) -> None:
        secret, now = new_secret(), int(time.time())
        sent = headers("evt_1", now, b"{}", [secret])
        assert sent == {"webhook-id": "evt_1", "webhook-timestamp": str(now),
                        "webhook-signature": sign([secret], "evt_1", now, b"{}"),
                        "content-type": "application/json"}
        verify(secret, b"{}", sent)


class TestRotation:
    def test_a_rotated_out_secret_verifies_for_its_grace_then_not(self) -> None:
        old, new, rotated_at = new_secret(), new_secret(), time.time() - DAY

        def signed_at(now: float) -> dict[str, str]:
            return headers("evt_1", int(time.time()), b"{}",
                           live_secrets(new, old, rotated_at, now, grace_s=DAY))

        within, after = signed_at(rotated_at + DAY - 1), signed_at(rotated_at + DAY)
        verify(old, b"{}", within)
        verify(new, b"{}", within)
        verify(new, b"{}", after)
        with pytest.raises(InvalidWebhookSignatureError):
            verify(old, b"{}", after)

    def test_without_a_rotation_only_the_current_secret_signs(self) -> None:
        assert live_secrets("whsec_a", None, None, 0.0, grace_s=DAY) == ["whsec_a"]
