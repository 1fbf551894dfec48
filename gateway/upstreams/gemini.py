"""Google Veo on the Gemini API (flavor ``gemini``).

Followed: Gemini API "Generate videos with Veo" (ai.google.dev/gemini-api/docs/video, the REST
examples: ``models/{model}:predictLongRunning``, ``GET /{operation name}`` until ``done``, then
``curl -L -H "x-goog-api-key: …" <video.uri>``); the google-genai SDK's ``generate_videos``
request and response converters (instances[0] prompt/image/lastFrame, parameters aspectRatio/
durationSeconds/resolution/negativePrompt/seed/personGeneration, generateVideoResponse
.generatedSamples, raiMediaFilteredReasons; ``generate_audio`` is refused on the Gemini API);
Google's error model (google.rpc.Status, ErrorInfo reasons); QuantumNous/new-api
relay/channel/task/gemini/adaptor.go.

Translation::

    model, prompt   -> the path's model, instances[0].prompt
    seconds         -> parameters.durationSeconds, always
    size            -> parameters.aspectRatio (9:16 for a portrait size, else 16:9) and
                       parameters.resolution (720p, 1080p; 4k for a 2160 short side)
    image           -> instances[0].image {bytesBase64Encoded, mimeType}: Veo takes image bytes
                       only, so a link is refused before any call; metadata last_frame_url (a
                       data URL) -> instances[0].lastFrame
    audio           -> nothing to send: Veo 3 always makes sound and the Gemini API refuses
                       ``generateAudio``; the flavor declares audio, and cannot turn it off
    metadata        -> parameters, in Veo's camelCase (negative_prompt -> negativePrompt, seed,
                       person_generation -> personGeneration, …)

The operation's full name (``models/…/operations/…``) is the job's id and its poll path.
Statuses: none; ``done`` absent is running, ``error`` or a response without a video (filtered by
Google's responsible-AI checks) is the failure. Nothing reports the seconds or size rendered;
the sound is reported from the operation's model (Veo 3 always renders it, Veo 2 never).
Download: the video's uri is on the API host and needs the key; it answers with a redirect to a
short-lived signed link elsewhere. The client follows redirects with every header except
Authorization, and this key is a header of its own, so the flavor takes the first hop itself and
fetches the signed link with no credentials. No cancel.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urljoin

import httpx

from gateway.ledger.sizes import Size
from gateway.metrics import upstream_timer
from gateway.upstreams.auth import GoogleApiKey
from gateway.upstreams.base import (
    UpstreamAmbiguous,
    UpstreamError,
    UpstreamGone,
    UpstreamRefused,
    UpstreamUnavailable,
)
from gateway.upstreams.flavor import (
    AUDIO,
    CREATE,
    IMAGE,
    ContentStream,
    CreateRequest,
    Flavor,
    Submitted,
)
from gateway.upstreams.http import UpstreamHTTP, _raw
from gateway.upstreams.native import (
    IMAGE_KEYS,
    asset_url,
    failure,
    field,
    first,
    first_frame,
    inline,
    last_frame,
    merged,
    number,
    same_origin,
    text,
)
from gateway.upstreams.outcome import Asset, Completed, PollOutcome, Running, Unreachable
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient

# Both spellings: the REST API's camelCase and the SDK's snake_case a client may copy.
PRICED = frozenset({"model", "durationSeconds", "duration_seconds", "resolution", "aspectRatio",
                    "aspect_ratio", "sampleCount", "sample_count", "numberOfVideos",
                    "number_of_videos", "generateAudio", "generate_audio"})
RESERVED = frozenset({"prompt", "image", "lastFrame", "instances", "parameters", "video",
                      *IMAGE_KEYS})
# Fields of the instance rather than of the parameters.
INSTANCE_FIELDS = frozenset({"referenceImages"})
KEY_INVALID = "API_KEY_INVALID"

AUTH = GoogleApiKey


def read_error(body: Any) -> tuple[str | None, str | None, str | None]:
    """google.rpc.Status: ``{"error": {"code", "message", "status", "details"}}``."""
    error = field(body, "error")
    details = field(error, "details")
    reason = next((text(field(item, "reason")) for item in details
                   if text(field(item, "reason"))), None) if isinstance(details, list) else None
    code = reason or text(field(error, "status")) or text(field(error, "code"))
    return text(field(error, "message")), code, None


ERRORS = read_error


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def aspect_ratio(size: Size) -> str:
    return "9:16" if size.landscape is False else "16:9"


def resolution(size: Size) -> str:
    return "4k" if size.short == 2160 else size.tier


def veo_image(image: str, param: str, http: UpstreamHTTP) -> dict[str, str]:
    found = inline(image)
    if found is None:
        message = "This model takes an uploaded image, not an image URL."
        raise UpstreamRefused(400, http.public("invalid_input", message, param))
    return {"bytesBase64Encoded": found[1], "mimeType": found[0]}


def body(request: CreateRequest, http: UpstreamHTTP) -> dict[str, Any]:
    instance: dict[str, object] = {"prompt": request.prompt}
    if lead := first_frame(request):
        instance["image"] = veo_image(lead, "input_reference", http)
    if tail := last_frame(request):
        instance["lastFrame"] = veo_image(tail, "metadata", http)
    own = {"aspectRatio": aspect_ratio(request.size), "durationSeconds": request.seconds,
           "resolution": resolution(request.size)}
    rename = {key: camel(key) for key in request.metadata}
    parameters = merged(request.metadata, own, priced=PRICED, reserved=RESERVED, rename=rename)
    instance.update({key: parameters.pop(key) for key in INSTANCE_FIELDS if key in parameters})
    return {"instances": [instance], "parameters": parameters}


def outcome(http: UpstreamHTTP, upstream_id: str, operation: object) -> PollOutcome:
    error = field(operation, "error")
    if isinstance(error, dict):
        code = field(error, "status") or field(error, "code")
        return failure(http, upstream_id, code, field(error, "message"))
    if field(operation, "done") is not True:
        return Running()
    result = field(operation, "response", "generateVideoResponse")
    uri = text(field(first(field(result, "generatedSamples")), "video", "uri"))
    if uri is not None:
        return Completed(assets=(Asset("video", uri),), audio=makes_sound(upstream_id))
    reasons = field(result, "raiMediaFilteredReasons")
    if first(reasons) is not None or number(field(result, "raiMediaFilteredCount")):
        return failure(http, upstream_id, "content_filtered", text(first(reasons)))
    return failure(http, upstream_id, None, None)  # done, and no video will come


def makes_sound(operation: str) -> bool | None:
    """Whether the operation's model renders sound: every Veo 3 does, no Veo 2 does."""
    model = re.match(r"models/([^/]+)/operations/", operation)
    name = model.group(1) if model else ""
    return True if name.startswith("veo-3") else False if name.startswith("veo-2") else None


def _refuses_key(response: httpx.Response) -> bool:
    """Google answers a wrong key with 400 INVALID_ARGUMENT: our configuration, not the job."""
    if response.status_code != 400:
        return False
    try:
        return read_error(response.json())[1] == KEY_INVALID
    except ValueError:
        return False


class GeminiFlavor:
    capabilities = frozenset({CREATE, IMAGE, AUDIO})
    priced_fields = PRICED

    def __init__(self, http: UpstreamHTTP) -> None:
        self.http = http

    async def create(self, request: CreateRequest, key: str) -> Submitted:
        model = re.sub(r"^models/", "", request.model)
        sent = self.http.request("POST", f"/models/{model}:predictLongRunning", key,
                                 json=body(request, self.http))
        response = await self.http.send(sent, "create")
        if _refuses_key(response):
            raise UpstreamUnavailable("the upstream refused the key")
        self.http.check(response, gone_on_404=False)
        try:
            name = text(field(response.json(), "name"))
        except ValueError as exc:
            raise UpstreamAmbiguous("upstream answered with malformed JSON") from exc
        if name is None:
            raise UpstreamAmbiguous("the upstream accepted the task without an operation")
        return Submitted(name, {"operation": name})

    async def poll(self, upstream_id: str, state: Mapping[str, str], key: str) -> PollOutcome:
        name = state.get("operation", upstream_id)
        try:
            operation = await self.http.json(self.http.request("GET", f"/{name}", key), "poll",
                                             gone_on_404=True, ids=(upstream_id,))
        except UpstreamError as exc:
            return Unreachable(str(exc))
        return outcome(self.http, upstream_id, operation)

    async def cancel(self, upstream_id: str, state: Mapping[str, str], key: str) -> None:
        return None  # the Gemini API offers no cancel of a video operation

    @asynccontextmanager
    async def content(self, upstream_id: str, state: Mapping[str, str], key: str, *,
                      variant: str, url: str | None, range_header: str | None,
                      ) -> AsyncIterator[ContentStream]:
        uri = url if variant == "video" else None
        if variant == "video" and uri is None:
            uri = await asset_url(self.poll(upstream_id, state, key), "video")
        if uri is None:
            raise UpstreamGone("the upstream offers no such download")
        headers = {"Range": range_header} if range_header else {}
        # The key goes only to the API's own host, whatever host a poll's uri names.
        keyed = key if same_origin(uri, self.http.base_url) else None
        hop = await self._unfollowed(self.http.request("GET", uri, keyed, headers=headers))
        location = hop.headers.get("location") if hop.is_redirect else None
        if location is None:
            try:
                yield await self._served(hop)
            finally:
                await hop.aclose()
            return
        await hop.aclose()
        signed = self.http.request("GET", urljoin(uri, location), None, headers=headers)
        async with self.http.open(signed) as stream:
            yield stream

    async def _unfollowed(self, request: httpx.Request) -> httpx.Response:
        try:
            async with upstream_timer(self.http.name, "content"):
                return await self.http.client.send(request, stream=True, follow_redirects=False)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            raise UpstreamUnavailable(f"cannot connect ({type(exc).__name__})") from exc
        except httpx.HTTPError as exc:
            raise UpstreamAmbiguous(f"no answer ({type(exc).__name__})") from exc

    async def _served(self, response: httpx.Response) -> ContentStream:
        """The bytes of a download the API served itself, or the error it amounts to."""
        if response.status_code >= 400 and response.status_code != 416:
            await response.aread()
            try:
                self.http.check(response, gone_on_404=True)
            except UpstreamRefused as exc:
                raise UpstreamGone("upstream refused the download") from exc
            raise UpstreamError(f"upstream answered {response.status_code}")
        length = response.headers.get("content-length")
        return ContentStream(
            status=response.status_code, content_type=response.headers.get("content-type"),
            content_length=int(length) if length and length.isdigit() else None,
            content_range=response.headers.get("content-range"), chunks=_raw(response))


def make(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
         secrets: UpstreamSecrets | None = None) -> Flavor:
    return GeminiFlavor(UpstreamHTTP(name, base_url, client, timeout_s, AUTH(), secrets=secrets,
                                     errors=ERRORS))
