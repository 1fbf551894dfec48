"""Standard Webhooks signatures (HMAC-SHA256, ``v1,<base64>``), as the ``openai`` SDK checks them.

The signed content is ``{webhook-id}.{webhook-timestamp}.{body}``. The timestamp is the
attempt's, not the event's: receivers (the SDK by default) refuse one more than five minutes
off their clock, so each retry is signed anew, under the same ``webhook-id``.

Signing is a few lines of the standard library, written here rather than taken from the
``standardwebhooks`` package: that package signs with one secret per object, from a
``datetime`` and a ``str`` body, and verifies, which the gateway never does; the tests check
these signatures with the verifier the clients actually run, the SDK's.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
import secrets as random_secrets
from collections.abc import Sequence

SECRET_PREFIX = "whsec_"
# The scheme allows 24 to 64 bytes of key; 32 is as much as SHA-256 gives back.
SECRET_BYTES = 32
# Ids and timestamps are part of the signed content, delimited by dots.
_MESSAGE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(random_secrets.token_bytes(SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    if not secret.startswith(SECRET_PREFIX):
        raise ValueError("a webhook secret starts with whsec_")
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except binascii.Error:
        raise ValueError("a webhook secret is whsec_ and base64") from None
    if not 24 <= len(key) <= 64:
        raise ValueError("a webhook secret holds 24 to 64 bytes")
    return key


def sign(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value: one ``v1,`` signature per secret, space-separated.

    During a rotation both the new and the old secret sign, so a receiver that still has
    the old one keeps verifying until it is retired.
    """
    if not secrets:
        raise ValueError("at least one secret signs a webhook")
    if not _MESSAGE_ID.fullmatch(msg_id):
        raise ValueError("a webhook id is letters, digits, _ and -")
    content = b"%s.%d.%s" % (msg_id.encode(), timestamp, body)
    signatures = (hmac.new(_key(secret), content, hashlib.sha256).digest() for secret in secrets)
    return " ".join("v1," + base64.b64encode(signature).decode() for signature in signatures)


def headers(msg_id: str, timestamp: int, body: bytes, secrets: Sequence[str]) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secrets, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def live_secrets(current: str, previous: str | None, rotated_at: float | None, now: float,
                 grace_s: float) -> list[str]:
    """The secrets that sign at ``now``: the current one, and the previous within its grace."""
    if previous is None or rotated_at is None or now - rotated_at >= grace_s:
        return [current]
    return [current, previous]
