"""The one gate an upstream's own words pass through on their way to a client.

Whatever an upstream says about a failure (a refused create, a failed job, a refused delete,
content or character call) reaches a client only as a :class:`PublicError`: a code from our own
small vocabulary, a message stripped of addresses, keys, key-like strings, the upstream's name
and its ids, and a ``param`` only when it names one of our own request fields. The operator
keeps the upstream's text (less our keys) in ``PublicError.raw``, shown by the admin API only.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

MODERATION_BLOCKED = "moderation_blocked"  # the provider's content rules stopped it
INVALID_INPUT = "invalid_input"  # the provider found the prompt, image or a parameter invalid
UPSTREAM_FAILED = "upstream_failed"  # anything else: the provider could not make the video
CODES = (MODERATION_BLOCKED, INVALID_INPUT, UPSTREAM_FAILED)

DEFAULT_MESSAGES = {
    MODERATION_BLOCKED: "The request was blocked by the provider's content moderation.",
    INVALID_INPUT: "The provider found the request invalid.",
    UPSTREAM_FAILED: "The video could not be generated.",
}

# Our own request fields: an upstream's param is only meaningful to a client when it is one.
PUBLIC_PARAMS = frozenset({"prompt", "model", "size", "seconds", "input_reference", "metadata",
                           "video", "name"})
MAX_MESSAGE_CHARS = 300
MAX_RAW_CHARS = 2000

_MODERATION = re.compile(r"moderat|safety|unsafe|polic(y|ies)|sensitive|inspection|nsfw|"
                         r"content.?filter|blocked|prohibit|violat|inappropriate", re.IGNORECASE)
_INVALID = re.compile(r"invalid|missing|required|unsupported|not.?supported|malformed|"
                      r"bad.?request|too.?(long|large|short|many|big)|out.?of.?range|param",
                      re.IGNORECASE)


@dataclass(frozen=True)
class UpstreamSecrets:
    """What of one upstream must never reach a client, however its text quotes it."""

    keys: tuple[str, ...] = ()
    names: tuple[str, ...] = ()  # its configured name
    models: tuple[str, ...] = ()  # the vendor's own names of our models (model_map)
    addresses: tuple[str, ...] = ()  # its base URL, host:port and host

    @classmethod
    def of(cls, *, name: str, base_url: str, keys: Iterable[str] = (),
           models: Iterable[str] = ()) -> UpstreamSecrets:
        parts = urlsplit(base_url)
        # "ACCESS:SECRET" key pairs may be quoted half at a time.
        split = {piece for key in keys for piece in (key, *key.split(":")) if len(piece) >= 4}
        addresses = {base_url, parts.netloc, parts.hostname or ""}
        return cls(keys=_longest_first(split), names=(name,), models=_longest_first(models),
                   addresses=_longest_first(address for address in addresses if address))


NO_SECRETS = UpstreamSecrets()


@dataclass(frozen=True)
class PublicError:
    code: str
    message: str
    param: str | None
    raw: str | None  # the upstream's own words, for the operator's eyes only


def public_error(code: object, message: object, param: object = None, *,
                 secrets: UpstreamSecrets, ids: Iterable[str | None] = ()) -> PublicError:
    """The client's view (and the operator's) of what an upstream said about a failure.

    ``ids`` are the upstream's own ids the text may quote (the job's, for a poll).
    """
    code_text = _text(code)
    message_text = _text(message)
    public = public_code(code_text, message_text)
    scrubbed = scrub(message_text, secrets, ids=[i for i in ids if i])
    if not re.search(r"\w", re.sub(r"\[[a-z]+\]", "", scrubbed)):
        scrubbed = DEFAULT_MESSAGES[public]
    return PublicError(code=public, message=scrubbed, param=public_param(param),
                       raw=_raw(code_text, message_text, _text(param), secrets))


def public_code(code: str, message: str = "") -> str:
    """One of :data:`CODES`, from the upstream's code (or, when that says nothing, its text)."""
    informative = bool(code) and not code.isdigit()
    if _MODERATION.search(code) or _MODERATION.search(message):
        return MODERATION_BLOCKED
    if _INVALID.search(code) or (not informative and _INVALID.search(message)):
        return INVALID_INPUT
    return UPSTREAM_FAILED


def public_param(param: object) -> str | None:
    """The upstream's param, when it names one of our fields (``input_reference.url`` too)."""
    head = re.split(r"[.\[]", _text(param), maxsplit=1)[0]
    return head if head in PUBLIC_PARAMS else None


def _text(value: object) -> str:
    if value is None or isinstance(value, dict | list):
        return ""
    # Control characters could forge log lines or confuse a terminal; flatten them.
    return re.sub(r"[\x00-\x1f\x7f]+", " ", str(value)).strip()


def _longest_first(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(sorted(set(values), key=len, reverse=True))


def _raw(code: str, message: str, param: str, secrets: UpstreamSecrets) -> str | None:
    if not (code or message):
        return None
    raw = f"{code}: {message}" if code else message
    raw += f" (param: {param})" if param else ""
    for key in secrets.keys:  # the operator has them already; the database needn't
        raw = _replace(raw, key, "[key]")
    return _bounded(raw, MAX_RAW_CHARS)


def scrub(text: str, secrets: UpstreamSecrets = NO_SECRETS, *,
          ids: Iterable[str] = ()) -> str:
    """``text`` without anything that identifies the upstream or could be a credential."""
    text = _URL.sub("[url]", text)  # whole, before its host alone is found in it
    for literal in (*secrets.keys, *ids):
        text = _replace(text, literal, "[redacted]")
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    # After the patterns, so a host name holding a known word goes whole, not in pieces.
    for address in secrets.addresses:
        text = _replace(text, address, "[host]")
    for words, marker in ((secrets.names, "[provider]"), (secrets.models, "[model]")):
        for word in words:
            text = _replace_word(text, word, marker)
    text = _KEYLIKE.sub(_keylike, text)
    return _bounded(re.sub(r"\s+", " ", text).strip(), MAX_MESSAGE_CHARS)


def _replace(text: str, literal: str, marker: str) -> str:
    return re.sub(re.escape(literal), marker, text, flags=re.IGNORECASE) if literal else text


def _replace_word(text: str, word: str, marker: str) -> str:
    if len(word) < 2:  # a one-letter name would eat every such letter of the message
        return text
    return re.sub(rf"(?<![\w-]){re.escape(word)}(?![\w-])", marker, text, flags=re.IGNORECASE)


def _bounded(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut[limit // 2:] else cut) + "…"


def _ipv6(match: re.Match[str]) -> str:
    found = match.group(0)
    return "[host]" if "::" in found or found.count(":") >= 5 else found


# Tokens ending a hostname that are really file extensions or code words, not domains.
_NOT_TLDS = {"js", "py", "md", "sh", "rb", "go", "rs", "ts", "cs", "db", "gz", "7z", "png", "jpg",
             "jpeg", "gif", "webp", "bmp", "tif", "tiff", "mov", "mp", "mkv", "avi", "webm", "wav",
             "json", "yaml", "yml", "txt", "html", "htm", "css", "pdf", "zip", "tar", "log", "cfg",
             "ini", "toml", "xml", "csv", "exe", "bin", "so", "dll", "jsx", "tsx", "vue", "php"}
_GTLDS = {"com", "net", "org", "info", "biz", "dev", "app", "cloud", "tech", "site", "online",
          "xyz", "top", "pro", "ai", "io", "co", "me", "tv", "cc", "us", "cn", "local",
          "localdomain", "internal", "intranet", "lan", "corp", "home", "svc", "cluster",
          "example", "test", "invalid", "api", "services", "global", "asia", "vip", "shop"}


def _hostname(match: re.Match[str]) -> str:
    tld = match.group("tld")
    if tld in _NOT_TLDS or (len(tld) > 2 and tld not in _GTLDS):
        return match.group(0)
    return "[host]"


Replacement = str | Callable[[re.Match[str]], str]
_URL = re.compile(r"\b[a-z][a-z0-9+.\-]*://[^\s'\"<>]+", re.IGNORECASE)
_PATTERNS: list[tuple[re.Pattern[str], Replacement]] = [
    (re.compile(r"\beyJ[\w-]{4,}\.[\w-]{4,}\.[\w-]*"), "[redacted]"),  # a JWT
    (re.compile(r"\b(bearer|basic)\s+[^\s,;]+", re.IGNORECASE), r"\1 [redacted]"),
    (re.compile(r"\b([\w.-]*(?:key|token|secret|passw(?:or)?d|signature|credential|auth"
                r"(?:orization)?|session|cookie)[\w.-]*)\s*[=:]\s*[\"']?[^\s\"',;&)]+",
                re.IGNORECASE), r"\1=[redacted]"),
    (re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+"), "[email]"),
    (re.compile(r"\b(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[A-Z0-9]{16}\b"), "[redacted]"),
    (re.compile(r"\b(?:sk|pk|rk)-[\w-]{6,}|\bAIza[\w-]{20,}|\bgh[pousr]_\w{16,}"
                r"|\bxox[abprs]-[\w-]{8,}"), "[redacted]"),
    (re.compile(r"\b[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\b",
                re.IGNORECASE), "[redacted]"),
    (re.compile(r"\b(?:\d{1,3}\.){3}\d{1,3}(?::\d{1,5})?\b"), "[host]"),
    (re.compile(r"\[?(?<![\w:])(?:[0-9a-f]{0,4}:){2,7}[0-9a-f]{0,4}(?![\w:])\]?(?::\d{1,5})?",
                re.IGNORECASE), _ipv6),
    (re.compile(r"\blocalhost(?::\d{1,5})?\b", re.IGNORECASE), "[host]"),
    (re.compile(r"\b(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+(?P<tld>[a-z]{2,24})\b"
                r"(?::\d{1,5})?"), _hostname),
]

# Runs of token characters long enough to be a key, an id or an encoded secret.
_KEYLIKE = re.compile(r"(?<![\w\[])[A-Za-z0-9_\-+/=]{16,}")


def _entropy(token: str) -> float:
    counts = Counter(token)
    return -sum(n / len(token) * math.log2(n / len(token)) for n in counts.values())


def _keylike(match: re.Match[str]) -> str:
    token = match.group(0)
    digits = sum(ch.isdigit() for ch in token)
    letters = sum(ch.isalpha() for ch in token)
    random_looking = (digits >= 2 and letters >= 2) or digits == len(token) or (
        len(token) >= 20 and token != token.lower() and _entropy(token) >= 3.9)
    return "[redacted]" if random_looking else token
