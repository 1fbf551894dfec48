"""How each flavor proves who it is: the headers an upstream request carries for a key.

A strategy is built once per upstream and asked for headers on every request, so what it
derives from the key (Kling's JWT) is cached, and the raw secret never goes on the wire where
the vendor does not want it.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Callable
from typing import Protocol

import jwt


class Auth(Protocol):
    def headers(self, key: str) -> dict[str, str]: ...


class Bearer:
    """``Authorization: Bearer <key>`` (OpenAI, Ark, MiniMax and most resellers)."""

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {key}"}


class DashScope(Bearer):
    """Bearer, plus the header that makes DashScope's video synthesis an async task.

    DashScope refuses a synchronous call to its video-synthesis endpoint; the header is
    harmless on task queries, so it rides on every request.
    (https://www.alibabacloud.com/help/en/model-studio/text-to-video-api-reference)
    """

    def headers(self, key: str) -> dict[str, str]:
        return {**super().headers(key), "X-DashScope-Async": "enable"}


class GoogleApiKey:
    """``x-goog-api-key: <key>`` (the Gemini API; google-genai's BaseApiClient sends it)."""

    def headers(self, key: str) -> dict[str, str]:
        return {"x-goog-api-key": key}


class TokenKey:
    """``Authorization: Token <key>`` (Vidu's enterprise API)."""

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Token {key}"}


class KlingJWT:
    """Kling's HS256 JWT, minted from ``ACCESS_KEY:SECRET_KEY`` and cached until near expiry.

    Kling's docs: payload ``{"iss": access_key, "exp": now + 1800, "nbf": now - 5}``, header
    ``{"alg": "HS256", "typ": "JWT"}``, sent as ``Authorization: Bearer <jwt>``. The secret key
    only signs; it is never sent.
    """

    lifetime_s = 1800
    # A token is replaced this long before it expires, so none arrives at Kling stale.
    renew_before_s = 300
    # Kling checks nbf against its own clock; a little back-dating absorbs clock skew.
    skew_s = 5

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._cache: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def token(self, key: str) -> str:
        at = self._clock()
        cached = self._cache.get(key)
        if cached is not None and cached[1] - self.renew_before_s > at:
            return cached[0]
        access, secret = split_kling_key(key)
        expires = int(at) + self.lifetime_s
        with warnings.catch_warnings():
            # The secret's length is the vendor's choice, not ours to warn about per request.
            warnings.simplefilter("ignore", jwt.warnings.InsecureKeyLengthWarning)
            minted = jwt.encode({"iss": access, "exp": expires, "nbf": int(at) - self.skew_s},
                                secret, algorithm="HS256", headers={"typ": "JWT"})
        with self._lock:
            self._cache[key] = (minted, float(expires))
        return minted

    def headers(self, key: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token(key)}"}


def split_kling_key(key: str) -> tuple[str, str]:
    access, sep, secret = key.partition(":")
    if not sep or not access or not secret:
        raise ValueError("a Kling api_key is ACCESS_KEY:SECRET_KEY")
    return access, secret
