"""Signed content links: what ``POST /v1/videos/{id}/share`` hands out and the content route
accepts in place of a token (for a browser's ``<video>``, a chat client, a webhook receiver).

The MAC itself is ``gateway.archive.links``; this module adds the URL, the bounds on a link's
life and the one answer every bad link gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

from pydantic import BaseModel

from gateway.archive.links import LinkVerdict, sign, verify
from gateway.archive.policy import VARIANTS
from gateway.errors import InvalidRequest, PermissionDenied

MIN_SHARE_S = 60
MAX_SHARE_S = 7 * 24 * 3600
DEFAULT_SHARE_S = 24 * 3600


@dataclass(frozen=True)
class ShareRequest:
    expires_in: int = DEFAULT_SHARE_S
    variant: str = "video"

    @classmethod
    def parse(cls, fields: Mapping[str, object]) -> ShareRequest:
        unknown = sorted(set(fields) - {"expires_in", "variant"})
        if unknown:
            raise InvalidRequest(f"Unknown parameter '{unknown[0][:80]}'.", param=unknown[0][:80])
        expires_in = fields.get("expires_in", DEFAULT_SHARE_S)
        if isinstance(expires_in, str) and expires_in.isascii() and expires_in.isdigit():
            expires_in = int(expires_in)  # a form field
        if (not isinstance(expires_in, int) or isinstance(expires_in, bool)
                or not MIN_SHARE_S <= expires_in <= MAX_SHARE_S):
            raise InvalidRequest(f"'expires_in' must be a whole number of seconds from "
                                 f"{MIN_SHARE_S} to {MAX_SHARE_S}.", param="expires_in")
        variant = fields.get("variant", "video")
        if variant not in VARIANTS:
            raise InvalidRequest("'variant' must be video, thumbnail or spritesheet.",
                                 param="variant")
        return cls(expires_in=expires_in, variant=str(variant))


class SharedLink(BaseModel):
    object: str = "video.share"
    id: str
    variant: str
    url: str
    expires_at: int


@dataclass(frozen=True)
class Linker:
    """Signs and checks content links with the gateway's secret key."""

    secret: bytes
    # Where clients reach the gateway (``server.public_url``), else the request's own base.
    public_url: str | None = None

    def link(self, base_url: str, video_id: str, variant: str, expires_at: int) -> str:
        base = (self.public_url or base_url).rstrip("/")
        query = {"variant": variant, **sign(self.secret, video_id, variant, expires_at)}
        return f"{base}/v1/videos/{video_id}/content?{urlencode(query)}"

    def share(self, base_url: str, video_id: str, request: ShareRequest,
              at: float) -> SharedLink:
        expires_at = int(at) + request.expires_in
        return SharedLink(id=video_id, variant=request.variant, expires_at=expires_at,
                          url=self.link(base_url, video_id, request.variant, expires_at))

    def check(self, video_id: str, variant: str, expires: str | None, signature: str | None,
              at: float) -> None:
        """Raise 403 unless the parameters are a live link to this variant of this video.

        Expired, tampered, for another video: one answer, so a probe learns nothing."""
        if verify(self.secret, video_id, variant, expires, signature, now=at) \
                is not LinkVerdict.VALID:
            raise PermissionDenied("This link is not valid or has expired.",
                                   code="invalid_link")
