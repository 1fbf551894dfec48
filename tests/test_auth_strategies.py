"""The headers each flavor's auth strategy puts on an upstream request."""

from __future__ import annotations

import jwt
import pytest

from gateway.upstreams.auth import Bearer, DashScope, GoogleApiKey, KlingJWT, TokenKey


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def test_plain_strategies() -> None:
    assert Bearer().headers("k1") == {"Authorization": "Bearer k1"}
    assert DashScope().headers("k2") == {"Authorization": "Bearer k2",
                                         "X-DashScope-Async": "enable"}
    assert GoogleApiKey().headers("k3") == {"x-goog-api-key": "k3"}
    assert TokenKey().headers("k4") == {"Authorization": "Token k4"}


class TestKlingJWT:
    key = "AKEXAMPLE:secret-key-that-only-signs-the-token-0123"

    def decode(self, header: str, at: float) -> dict[str, object]:
        scheme, token = header.split(" ", 1)
        assert scheme == "Bearer"
        assert jwt.get_unverified_header(token) == {"alg": "HS256", "typ": "JWT"}
        return jwt.decode(token, "secret-key-that-only-signs-the-token-0123", algorithms=["HS256"],
                          options={"verify_exp": False, "verify_nbf": False})

    def test_claims_and_secret_not_on_the_wire(self) -> None:
        clock = Clock(1_800_000_000.0)
        header = KlingJWT(clock).headers(self.key)["Authorization"]
        assert "secret-key-that-only-signs-the-token-0123" not in header
        claims = self.decode(header, clock.at)
        assert claims == {"iss": "AKEXAMPLE", "exp": 1_800_001_800, "nbf": 1_799_999_995}

    def test_cached_until_shortly_before_expiry(self) -> None:
        clock = Clock(1_800_000_000.0)
        auth = KlingJWT(clock)
        first = auth.token(self.key)
        clock.at += KlingJWT.lifetime_s - KlingJWT.renew_before_s - 1
        assert auth.token(self.key) == first
        clock.at += 2
        renewed = auth.token(self.key)
        assert renewed != first
        assert self.decode(f"Bearer {renewed}", clock.at)["exp"] == int(clock.at) + 1800

    def test_each_key_has_its_own_token(self) -> None:
        auth = KlingJWT(Clock(1_800_000_000.0))
        assert auth.token("A:one") != auth.token("B:two")

    @pytest.mark.parametrize("key", ["no-colon", ":secret", "access:"])
    def test_malformed_key(self, key: str) -> None:
        with pytest.raises(ValueError, match="ACCESS_KEY:SECRET_KEY"):
            KlingJWT().headers(key)
