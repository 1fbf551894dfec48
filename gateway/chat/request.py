"""Reading a chat completion request as the create it stands for.

The model name picks the job's shape (an alias names model, size and length; a video model
gets a create's defaults), the last user message's text is the prompt and its ``image_url``
part the input reference. What a video job cannot honour (several choices, tools, a response
format) is refused rather than ignored, so a client never pays for an answer it did not ask
for. Everything here is checked before any hold.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from gateway.chat.catalog import model_not_found
from gateway.config import Settings
from gateway.errors import InvalidRequest
from gateway.videos.inputs import CreateParams, image_reference, parse_seconds, parse_size

# Names chat clients default to that are language models: worth a pointed 400 rather than
# the 404 an unknown name gets.
_TEXT_MODEL = re.compile(r"^(gpt-|chatgpt|o[1-9](-|$)|text-|davinci|babbage|claude|gemini-"
                         r"|llama|mistral|mixtral|deepseek|qwen|glm-|kimi|grok)", re.I)


@dataclass(frozen=True)
class ChatRequest:
    model: str
    prompt: str
    image_url: str | None
    stream: bool
    include_usage: bool


@dataclass(frozen=True)
class JobShape:
    model: str
    size: str
    seconds: int


def parse_chat(body: Mapping[str, Any]) -> ChatRequest:
    model = body.get("model")
    if not isinstance(model, str) or not model.strip():
        raise InvalidRequest("'model' is required: a video model or alias from GET /v1/models.",
                             param="model")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise InvalidRequest("'messages' must be a non-empty array.", param="messages")
    _refuse_unsupported(body)
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise InvalidRequest("'stream' must be true or false.", param="stream")
    options = body.get("stream_options")
    include_usage = isinstance(options, dict) and options.get("include_usage") is True
    prompt, image_url = _last_user_turn(messages)
    return ChatRequest(model=model.strip(), prompt=prompt, image_url=image_url,
                       stream=bool(stream), include_usage=include_usage)


def _refuse_unsupported(body: Mapping[str, Any]) -> None:
    if body.get("n") not in (None, 1):
        raise InvalidRequest("A video chat completion makes one video: 'n' must be 1.",
                             param="n")
    for name in ("tools", "functions"):
        if body.get(name):
            raise InvalidRequest(f"Video models do not call tools: '{name}' is not supported.",
                                 param=name)
    response_format = body.get("response_format")
    if response_format is not None and response_format != {"type": "text"}:
        raise InvalidRequest("Video models answer in text with a link: only "
                             "'response_format' {\"type\": \"text\"} is supported.",
                             param="response_format")


def _last_user_turn(messages: Sequence[object]) -> tuple[str, str | None]:
    """The prompt and image URL of the last user message; other roles are context a video
    model cannot use."""
    turn = next((m for m in reversed(messages) if isinstance(m, dict)
                 and m.get("role") == "user"), None)
    content = turn.get("content") if turn is not None else None
    texts: list[str] = []
    images: list[object] = []
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for part in content:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "text":
                texts.append(str(part.get("text") or ""))
            elif kind == "image_url":
                image = part.get("image_url")
                images.append(image.get("url") if isinstance(image, dict) else image)
            else:
                raise InvalidRequest("A user message's parts may be text and one image_url.",
                                     param="messages")
    prompt = "\n".join(text.strip() for text in texts if text.strip())
    if not prompt:
        raise InvalidRequest("The last user message has no text: it is the video's prompt.",
                             param="messages")
    if len(images) > 1:
        raise InvalidRequest("A video takes one reference image; the last user message has "
                             f"{len(images)}.", param="messages")
    image = images[0] if images else None
    if image is not None and not isinstance(image, str):
        raise InvalidRequest("An image_url part needs a 'url'.", param="messages")
    return prompt, image


def job_shape(name: str, settings: Settings) -> JobShape:
    """The model, size and length a chat model name stands for."""
    alias = settings.chat.aliases.get(name)
    if alias is not None:
        return JobShape(alias.model, alias.size, alias.seconds)
    if name in settings.known_models:  # a video model by name: a create's defaults
        return JobShape(name, parse_size({}, settings, name), parse_seconds({}, settings, name))
    if _TEXT_MODEL.match(name):
        raise InvalidRequest(f"'{name[:80]}' is a text model; this gateway makes videos. Pick "
                             "a video model or alias from GET /v1/models.", param="model")
    raise model_not_found(name)


async def create_params(request: ChatRequest, settings: Settings) -> CreateParams:
    """The create a chat request stands for, its reference image checked as a create's."""
    shape = job_shape(request.model, settings)
    if len(request.prompt) > settings.max_prompt_chars:
        raise InvalidRequest(f"The prompt is longer than {settings.max_prompt_chars} "
                             "characters.", param="messages")
    image, reference = None, None
    if request.image_url is not None:
        found = await image_reference(request.image_url, shape.size, param="messages")
        if found is None:
            raise InvalidRequest("An image_url must be a data: URL or an http(s) URL.",
                                 param="messages")
        image, reference = found
    return CreateParams(prompt=request.prompt, model=shape.model, seconds=shape.seconds,
                        size=shape.size, metadata=None, image=image,
                        image_reference=reference)
