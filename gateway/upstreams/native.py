"""What the native vendor flavors share: metadata merged under the fields they own, sizes folded
onto a vendor's few ratios, image payloads, tolerant reading of vendor JSON, the poll outcome of
a status word, and downloads of pre-signed links that renew a link gone stale.

Pure helpers and one content route; no vendor's JSON lives here.
"""

from __future__ import annotations

import math
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from urllib.parse import urlsplit

from gateway.ledger.sizes import Size, parse_size
from gateway.upstreams.base import UpstreamGone, UpstreamUnavailable
from gateway.upstreams.flavor import PRICED_FIELDS, ContentStream, CreateRequest
from gateway.upstreams.http import UpstreamHTTP
from gateway.upstreams.outcome import Completed, Failed, PollOutcome, Running

# Our words for where a vendor's status word leaves a job; "unknown" is a vendor that no longer
# knows the task (not a failure of the job: see the flavor that uses it).
QUEUED, IN_PROGRESS, COMPLETED, FAILED, UNKNOWN = (
    "queued", "in_progress", "completed", "failed", "unknown")

# Image inputs a client may name in metadata (new-api's "OpenAI video format").
FIRST_FRAME_KEYS = ("img_url", "first_frame_url")
LAST_FRAME_KEY = "last_frame_url"
IMAGE_KEYS = frozenset({*FIRST_FRAME_KEYS, LAST_FRAME_KEY})

_DATA_URL = re.compile(r"data:([\w.+-]+/[\w.+-]+);base64,(.*)", re.DOTALL)


# --- reading vendor JSON --------------------------------------------------------------------
def field(value: object, *path: str) -> object:
    """``value[path[0]][path[1]]...``, or None where any step is not there."""
    for name in path:
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def first(value: object) -> object:
    """The first item of a list, or None."""
    return value[0] if isinstance(value, list) and value else None


def text(value: object) -> str | None:
    if isinstance(value, bool) or value is None or isinstance(value, dict | list):
        return None
    rendered = str(value).strip()
    return rendered or None


def number(value: object) -> float | None:
    """A JSON number or a numeric string (vendors write both), when positive."""
    if isinstance(value, bool):
        return None
    try:
        found = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return found if math.isfinite(found) and found > 0 else None


def flag(value: object) -> bool | None:
    if isinstance(value, bool):
        return value
    return {"true": True, "false": False}.get(str(value).lower()) if value is not None else None


def rendered_size(value: object) -> str | None:
    """A vendor's rendered size (``1280*720``, ``1280x720``, ``720p``) in our spelling."""
    written = text(value)
    size = parse_size(written) if written else None
    return size.key if size else None


def pixels(width: object, height: object) -> str | None:
    w, h = number(width), number(height)
    return f"{int(w)}x{int(h)}" if w and h else None


# --- statuses -------------------------------------------------------------------------------
def status_of(table: Mapping[str, str], word: object) -> str:
    """Our word for a vendor's status word; an unknown, empty or missing one is still running."""
    return table.get((text(word) or "").lower(), IN_PROGRESS)


def running(state: str) -> Running:
    return Running("queued") if state == QUEUED else Running("in_progress")


def failure(http: UpstreamHTTP, upstream_id: str, code: object, message: object) -> Failed:
    """A vendor's explicit failure, in words a client may see (and the operator's raw ones)."""
    public = http.public(code, message, ids=(upstream_id,))
    return Failed(code=public.code, message=public.message, raw=public.raw)


# --- requests -------------------------------------------------------------------------------
def merged(metadata: Mapping[str, object], own: Mapping[str, object], *,
           priced: Iterable[str], reserved: Iterable[str] = (),
           rename: Mapping[str, str] | None = None) -> dict[str, object]:
    """The flavor's own fields over the client's metadata (renamed to the vendor's words).

    The service refuses metadata naming a priced field before any call; this is the second
    line: no metadata key, however spelled, replaces or adds a priced or structural field.
    """
    blocked = {*PRICED_FIELDS, *priced, *reserved}
    names = rename or {}
    kept = {names.get(key, key): value for key, value in metadata.items()
            if key not in blocked and names.get(key, key) not in blocked}
    return {**kept, **own}


def nearest_ratio(size: Size, choices: Iterable[str]) -> str | None:
    """The vendor's aspect ratio closest to an exact size's; None for a tier."""
    if size.width is None or size.height is None:
        return None
    wanted = math.log(size.width / size.height)

    def distance(ratio: str) -> float:
        w, _, h = ratio.partition(":")
        return abs(math.log(int(w) / int(h)) - wanted)

    return min(choices, key=distance)


def first_frame(request: CreateRequest) -> str | None:
    """The input image as a data URL or a URL: ``input_reference``, else metadata's."""
    if request.image is not None:
        return request.image.data_url()
    return next((found for key in FIRST_FRAME_KEYS
                 if (found := text(request.metadata.get(key)))), None)


def last_frame(request: CreateRequest) -> str | None:
    return text(request.metadata.get(LAST_FRAME_KEY))


def inline(image: str) -> tuple[str, str] | None:
    """(media type, base64) of a data URL; None for a link."""
    match = _DATA_URL.fullmatch(image)
    return (match.group(1).lower(), match.group(2)) if match else None


def same_origin(url: str, base_url: str) -> bool:
    a, b = urlsplit(url), urlsplit(base_url)
    return (a.scheme, a.hostname, a.port) == (b.scheme, b.hostname, b.port)


# --- downloads ------------------------------------------------------------------------------
Renew = Callable[[], Awaitable[str | None]]


@asynccontextmanager
async def open_link(http: UpstreamHTTP, url: str | None, range_header: str | None,
                    renew: Renew) -> AsyncIterator[ContentStream]:
    """Stream a vendor's pre-signed link, with no credentials: it may live on another host.

    A link that is missing, expired or refused is renewed once from a fresh poll, since some
    vendors sign links for an hour and the job's stored one may be older.
    """
    headers = {"Range": range_header} if range_header else {}
    async with AsyncExitStack() as stack:
        stream: ContentStream | None = None
        if url:
            try:
                stream = await stack.enter_async_context(
                    http.open(http.request("GET", url, None, headers=headers)))
            except (UpstreamGone, UpstreamUnavailable):
                stream = None
        if stream is None:
            fresh = await renew()
            if not fresh:
                raise UpstreamGone("the upstream offers no such download")
            stream = await stack.enter_async_context(
                http.open(http.request("GET", fresh, None, headers=headers)))
        yield stream


async def asset_url(outcome: Awaitable[PollOutcome], variant: str) -> str | None:
    """The link a fresh poll gives one of a finished job's assets."""
    found = await outcome
    asset = found.asset(variant) if isinstance(found, Completed) else None
    return asset.url if asset else None


class SignedLinks:
    """``content`` for vendors whose results are pre-signed links on their own storage."""

    http: UpstreamHTTP

    async def poll(self, upstream_id: str, state: Mapping[str, str], key: str) -> PollOutcome:
        raise NotImplementedError

    @asynccontextmanager
    async def content(self, upstream_id: str, state: Mapping[str, str], key: str, *,
                      variant: str, url: str | None, range_header: str | None,
                      ) -> AsyncIterator[ContentStream]:
        async def renew() -> str | None:
            return await asset_url(self.poll(upstream_id, state, key), variant)

        async with open_link(self.http, url, range_header, renew) as stream:
            yield stream
