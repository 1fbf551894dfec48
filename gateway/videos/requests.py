"""From a parsed create request to what a flavor is sent: the typed request, what it needs
of an upstream, and the refusals of what no upstream of the group can do."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import cast

from gateway.errors import InvalidRequest
from gateway.ledger.sizes import parse_size
from gateway.upstreams.flavor import (
    AUDIO,
    CREATE,
    EDIT,
    IMAGE,
    CreateRequest,
    Derivations,
    Flavor,
    Image,
)
from gateway.videos.inputs import CreateParams

AUDIO_SWITCHES = ("audio", "generate_audio")


def vendor_request(params: CreateParams) -> CreateRequest:
    size = parse_size(params.size)
    assert size is not None  # parse_create accepted it
    metadata = dict(json.loads(params.metadata)) if params.metadata else {}
    return CreateRequest(model=params.model, prompt=params.prompt, seconds=params.seconds,
                         size=size, size_text=params.size, image=_image(params),
                         metadata={k: v for k, v in metadata.items() if k not in AUDIO_SWITCHES},
                         audio=_audio(metadata))


def _audio(metadata: Mapping[str, object]) -> bool:
    """Whether the client asked for generated sound (``metadata.audio``/``generate_audio``)."""
    asked = [metadata[key] for key in AUDIO_SWITCHES if key in metadata]
    if any(not isinstance(value, bool) for value in asked):
        raise InvalidRequest("'metadata.audio' must be true or false.", param="metadata")
    return any(asked)


def _image(params: CreateParams) -> Image | None:
    if params.image is not None:
        return Image(data=params.image.data, content_type=params.image.content_type,
                     filename=params.image.filename)
    reference = params.image_reference or {}
    if reference.get("file_id"):
        return Image(file_id=reference["file_id"])
    if reference.get("image_url"):
        return Image(url=reference["image_url"])
    return None


def derivations(flavor: Flavor) -> Derivations:
    # Callers checked the capability first; only OpenAI-format flavors declare these.
    return cast(Derivations, flavor)


def unsupported(model: str, needs: frozenset[str]) -> InvalidRequest:
    """The 400 for a request that no upstream of the token's group can serve."""
    if IMAGE in needs:
        return InvalidRequest(f"No provider of model '{model}' for this token takes an "
                              "input_reference image.", param="input_reference")
    if AUDIO in needs:
        return InvalidRequest(f"No provider of model '{model}' for this token generates "
                              "audio.", param="metadata")
    what = "edit" if EDIT in needs else "extend"
    return InvalidRequest(f"No provider of model '{model}' for this token can {what} videos.",
                          param="video")


def needs_of(request: CreateRequest) -> frozenset[str]:
    """The capabilities an upstream must declare to take this create."""
    return frozenset({CREATE} | ({IMAGE} if request.image else set())
                     | ({AUDIO} if request.audio else set()))
