"""What a chat client is told about its video, and OpenAI's chat shapes that carry it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from gateway.ledger.pricing import micros_to_usd
from gateway.videos.models import Job
from gateway.videos.schemas import public_status

USAGE = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
KEEPALIVE = ": keep-alive\n\n"
DONE = "data: [DONE]\n\n"


def progress_line(job: Job) -> str:
    if public_status(job.status) == "queued":
        return "Queued…"
    return f"Progress: {job.progress}%"


def ready_text(job: Job, link: str, link_hours: int) -> str:
    return (f"Your video is ready: [▶ {job.id}]({link})\n\n"
            f"Video id: `{job.id}`. The link plays without a token for {link_hours} hours; "
            f"after that, download it with your token from GET /v1/videos/{job.id}/content.")


def failed_text(job: Job) -> str:
    reason = (job.error_message or "The video could not be generated.").rstrip(".")
    return (f"The video failed: {reason}. Nothing was charged: the hold of "
            f"USD {micros_to_usd(job.price_micros)} was refunded.\n\nVideo id: `{job.id}`.")


def pending_text(job: Job) -> str:
    return (f"The video is still {public_status(job.status)} ({job.progress}%). Video id: "
            f"`{job.id}`. Follow it with GET /v1/videos/{job.id} and download it from "
            f"GET /v1/videos/{job.id}/content once completed, or send this request again "
            "with the same Idempotency-Key to wait for it here.")


@dataclass(frozen=True)
class Completion:
    """One answer's identity, shared by every chunk of its stream."""

    id: str
    created: int
    model: str

    def chunk(self, delta: dict[str, str], finish_reason: str | None = None) -> str:
        return self._event({"choices": [{"index": 0, "delta": delta, "logprobs": None,
                                         "finish_reason": finish_reason}]})

    def usage_chunk(self) -> str:
        return self._event({"choices": [], "usage": USAGE})

    def _event(self, fields: dict[str, Any]) -> str:
        body = {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "system_fingerprint": None, **fields}
        return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

    def message(self, content: str) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "system_fingerprint": None,
                "choices": [{"index": 0, "logprobs": None, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": content,
                                         "refusal": None}}],
                "usage": USAGE}
