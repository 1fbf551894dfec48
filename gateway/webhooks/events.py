"""Event bodies in the shape of OpenAI's webhook events.

``{"id": "evt_…", "object": "event", "type": …, "created_at": …, "data": {"id": "video_…"}}``
is the shape of every event the SDK types (``openai.types.webhooks``); its ``unwrap`` returns
an object with these fields for the video events too, though its union names no video class.
"""

from __future__ import annotations

import json
import secrets
from typing import Literal

EventType = Literal["video.completed", "video.failed"]
EVENT_TYPES: tuple[EventType, ...] = ("video.completed", "video.failed")


def new_event_id() -> str:
    return "evt_" + secrets.token_hex(16)


def event_body(event_id: str, event_type: EventType, video_id: str, created_at: int) -> bytes:
    """The exact bytes sent and signed; stored once, so every retry sends the same body."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event = {"id": event_id, "object": "event", "type": event_type,
             "created_at": int(created_at), "data": {"id": video_id}}
    return json.dumps(event, separators=(",", ":")).encode()
