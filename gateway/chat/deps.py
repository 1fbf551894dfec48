"""What the chat routes are handed: the video services' resources, and the job waiter."""

from __future__ import annotations

from typing import Annotated, Protocol

from fastapi import Depends

from gateway.jobs.changes import JobChanges
from gateway.tokens.auth import get_context
from gateway.videos.deps import VideoDeps


class ChatDeps(VideoDeps, Protocol):
    @property
    def changes(self) -> JobChanges: ...


ChatServed = Annotated[ChatDeps, Depends(get_context)]
