"""The ``chat:`` section of the settings: aliases that name a whole job, and the waits."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ChatAlias(_Strict):
    """A name a chat client picks that stands for one job shape: a chat request has no
    fields for size or length, so the model name carries them."""

    model: str = Field(min_length=1)
    size: str = Field(min_length=1, max_length=20)
    seconds: int = Field(ge=1)


class ChatConfig(_Strict):
    aliases: dict[str, ChatAlias] = Field(default_factory=dict)
    # How long a non-streaming request waits for its video before answering with its id.
    wait_s: float = Field(120.0, ge=0)
    # How often a waiter re-reads the job, so a job another process settles is seen too.
    progress_every_s: float = Field(2.0, gt=0)
    # The longest a stream stays silent: proxies cut connections idle for much longer.
    keepalive_s: float = Field(15.0, gt=0)
