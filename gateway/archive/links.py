"""Signed content links: a URL to one variant of one video that works without a token until
it expires.

The signature is an HMAC-SHA256 over the video id, the variant and the expiry, keyed with a
key derived from the gateway's secret key (so a link's MAC can never be confused with a token
hash made from the same secret). It travels as two query parameters, ``expires`` (Unix
seconds) and ``signature`` (url-safe base64, unpadded). Pure functions: the caller supplies
the secret and the clock.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from enum import StrEnum

_PURPOSE = b"video-gateway content link v1"
_EXPIRES = re.compile(r"[0-9]{1,12}")  # Unix seconds until the year 33658: plenty
_FIELD = re.compile(r"[A-Za-z0-9_.:-]{1,200}")


class LinkVerdict(StrEnum):
    VALID = "valid"
    EXPIRED = "expired"  # a link this gateway signed, past its time
    INVALID = "invalid"  # missing, malformed, tampered, or signed for another video or variant


def _link_key(secret: str | bytes) -> bytes:
    raw = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(raw, _PURPOSE, hashlib.sha256).digest()


def _signature(secret: str | bytes, video_id: str, variant: str, expires: int) -> str:
    # The fields are checked to hold no "\n", so the message has one reading only.
    message = f"{video_id}\n{variant}\n{expires}".encode()
    digest = hmac.new(_link_key(secret), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def sign(secret: str | bytes, video_id: str, variant: str, expires: int) -> dict[str, str]:
    """The query parameters that make a link to ``variant`` of ``video_id`` valid until the
    Unix time ``expires``."""
    for name, value in (("video_id", video_id), ("variant", variant)):
        if not _FIELD.fullmatch(value):
            raise ValueError(f"{name} {value!r} cannot be signed")
    if not _EXPIRES.fullmatch(str(expires)):
        raise ValueError(f"expires {expires!r} is not a Unix time")
    return {"expires": str(expires),
            "signature": _signature(secret, video_id, variant, expires)}


def verify(secret: str | bytes, video_id: str, variant: str, expires: str | None,
           signature: str | None, *, now: float) -> LinkVerdict:
    """Whether the link's parameters grant ``variant`` of ``video_id`` at ``now``.

    The signature is checked first and in constant time, so ``EXPIRED`` is only ever said of
    a link this gateway really signed; the caller answers anything but ``VALID`` alike.
    """
    if expires is None or signature is None or not _EXPIRES.fullmatch(expires):
        return LinkVerdict.INVALID
    if not (_FIELD.fullmatch(video_id) and _FIELD.fullmatch(variant)):
        return LinkVerdict.INVALID
    expected = _signature(secret, video_id, variant, int(expires))
    if not hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace")):
        return LinkVerdict.INVALID
    return LinkVerdict.VALID if now < int(expires) else LinkVerdict.EXPIRED
