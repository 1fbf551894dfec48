"""The upstream seam: what every flavor (one vendor's API) offers the rest of the gateway.

A flavor only translates: a typed create request into the vendor's call, the vendor's task
into a tagged poll outcome, a finished task's assets into content streams. Sending, auth,
timeouts and the mapping of transport and HTTP failures live in ``upstreams/http.py``, shared
by every flavor. Nothing outside ``upstreams/`` sees a vendor's JSON or an httpx type.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Protocol

from gateway.ledger.sizes import Size
from gateway.upstreams.base import Character, DeriveRequest, VideoUpload
from gateway.upstreams.outcome import PollOutcome

# What a flavor may declare it can do; selection never sends a job to one that cannot.
CREATE = "create"
IMAGE = "image"  # an input reference image (image-to-video)
REMIX = "remix"
EDIT = "edit"
EXTEND = "extend"
CHARACTERS = "characters"
CANCEL = "cancel"
AUDIO = "audio"  # generated sound, priced as its own dimension
CAPABILITIES = frozenset({CREATE, IMAGE, REMIX, EDIT, EXTEND, CHARACTERS, CANCEL, AUDIO})

# Our own names of the fields a price depends on; a client's metadata may never set them.
PRICED_FIELDS = frozenset({"model", "seconds", "duration", "size", "resolution", "n",
                           "count", "frames", "num_frames"})


@dataclass(frozen=True)
class Image:
    """An input reference image, checked by the gateway: its bytes, or a URL passed on."""

    data: bytes | None = None
    content_type: str = "image/png"
    url: str | None = None  # https:// as the client sent it
    file_id: str | None = None  # an upload the upstream itself holds (OpenAI format only)
    filename: str = "input_reference"

    def data_url(self) -> str:
        import base64

        if self.data is None:
            assert self.url is not None
            return self.url
        return f"data:{self.content_type};base64,{base64.b64encode(self.data).decode()}"


@dataclass(frozen=True)
class CreateRequest:
    """A create as a flavor receives it: parsed once, priced, with metadata vetted."""

    model: str  # the upstream's model name (after model_map)
    prompt: str
    seconds: int
    size: Size
    size_text: str  # as the client wrote it (e.g. ``1280x720``, ``720p``, ``1280*720``)
    image: Image | None = None
    metadata: Mapping[str, object] = field(default_factory=dict)
    audio: bool = False


@dataclass(frozen=True)
class Submitted:
    """An accepted task: its id, and what polling it later needs (stored with the job)."""

    upstream_id: str
    poll_state: Mapping[str, str] = field(default_factory=dict)
    outcome: PollOutcome | None = None


@dataclass(frozen=True)
class ContentStream:
    """An asset's bytes as the upstream sends them, with the headers that matter."""

    status: int
    content_type: str | None
    content_length: int | None
    content_range: str | None
    chunks: AsyncIterator[bytes]
    etag: str | None = None
    last_modified: str | None = None


class Flavor(Protocol):
    capabilities: frozenset[str]
    # The vendor's own names of priced parameters, refused in a client's metadata.
    priced_fields: frozenset[str]

    async def create(self, request: CreateRequest, key: str) -> Submitted: ...

    async def poll(self, upstream_id: str, state: Mapping[str, str], key: str) -> PollOutcome:
        """Never raises for a failed call: that is ``Unreachable``."""
        ...

    async def cancel(self, upstream_id: str, state: Mapping[str, str], key: str) -> None: ...

    def content(self, upstream_id: str, state: Mapping[str, str], key: str, *, variant: str,
                url: str | None, range_header: str | None,
                ) -> AbstractAsyncContextManager[ContentStream]: ...


class Derivations(Protocol):
    """What only OpenAI-format flavors offer: jobs made from an upstream's own videos.

    Reached only after the flavor declared the capability (``REMIX``, ``EDIT``, ``EXTEND``,
    ``CHARACTERS``).
    """

    async def remix(self, upstream_id: str, prompt: str, key: str) -> Submitted: ...

    async def derive(self, request: DeriveRequest, key: str) -> Submitted: ...

    async def create_character(self, name: str, upload: VideoUpload, key: str) -> Character: ...
