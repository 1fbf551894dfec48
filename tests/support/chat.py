"""Chat completions against a test gateway: streamed answers collected, links pulled out."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx
from openai import OpenAI

# The alias table the chat tests' gateways are configured with.
ALIASES = {
    "sora_video2": {"model": "sora-2", "size": "720x1280", "seconds": 4},
    "sora_video2-landscape": {"model": "sora-2", "size": "1280x720", "seconds": 4},
    "sora_video2-pro": {"model": "sora-2-pro", "size": "1024x1792", "seconds": 4},
}
_LINK = re.compile(r"\]\((https?://[^)\s]+)\)")


def user(text: str) -> list[dict[str, Any]]:
    return [{"role": "system", "content": "You are a video bot."},
            {"role": "user", "content": text}]


@dataclass
class Streamed:
    chunks: list[Any] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def text(self) -> str:
        return "".join(chunk.choices[0].delta.content or "" for chunk in self.chunks
                       if chunk.choices)

    @property
    def finish_reason(self) -> str | None:
        reasons = [c.choices[0].finish_reason for c in self.chunks if c.choices]
        return reasons[-1] if reasons else None


def stream_chat(client: OpenAI, model: str, prompt: str, **kwargs: Any) -> Streamed:
    """A whole streamed answer, read through the SDK."""
    result = Streamed()
    stream = client.chat.completions.create(model=model, messages=user(prompt),  # type: ignore[call-overload]
                                            stream=True, **kwargs)
    with stream:
        result.headers = dict(stream.response.headers)
        result.chunks.extend(stream)
    return result


def link_in(text: str) -> str:
    found = _LINK.findall(text)
    assert len(found) == 1, text
    return str(found[0])


def raw_stream_lines(base_url: str, token: str, body: dict[str, Any],
                     headers: dict[str, str] | None = None) -> list[str]:
    """Every line of a streamed answer as sent, comments included (the SDK drops those)."""
    with httpx.stream("POST", f"{base_url}/v1/chat/completions", json={**body, "stream": True},
                      headers={"Authorization": f"Bearer {token}", **(headers or {})},
                      timeout=60) as response:
        assert response.status_code == 200, response.read()
        return list(response.iter_lines())


def data_events(lines: list[str]) -> list[Any]:
    return [json.loads(line[6:]) for line in lines
            if line.startswith("data: ") and line != "data: [DONE]"]
