"""Gateway tokens: high-entropy, prefixed, stored only as a keyed hash."""

from __future__ import annotations

import hashlib
import hmac
import secrets

TOKEN_PREFIX = "sk-"


def generate_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str, key: bytes) -> str:
    return hmac.new(key, token.encode("utf-8", "surrogateescape"), hashlib.sha256).hexdigest()


def token_hint(token: str) -> str:
    """Enough of a token for an operator to recognise it, too little to use it."""
    return f"{token[:6]}...{token[-4:]}"


def constant_time_equals(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), expected.encode())


def new_id(prefix: str, nbytes: int = 16) -> str:
    return f"{prefix}_{secrets.token_hex(nbytes)}"


def is_id(value: str, prefix: str, nbytes: int = 16) -> bool:
    """Whether ``value`` has the shape of an id minted by new_id (checked before any query)."""
    body = value.removeprefix(f"{prefix}_")
    return body != value and len(body) == 2 * nbytes and all(c in HEX for c in body)


HEX = frozenset("0123456789abcdef")
