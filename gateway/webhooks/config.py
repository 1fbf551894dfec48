"""The ``webhooks:`` section of the settings."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator


class WebhooksConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    # Plain http lets anyone on the path read the events; meant for local receivers.
    allow_http: bool = False
    # Private, loopback and link-local receivers are the gateway's own network (SSRF).
    allow_private: bool = False
    max_url_length: int = Field(2048, ge=16)
    connect_timeout_s: float = Field(3.0, gt=0)
    # One attempt, from connecting to the last byte read: a receiver trickling its answer
    # must not hold a delivery slot.
    timeout_s: float = Field(10.0, gt=0)
    # Only an excerpt of the receiver's answer is kept, for the operator.
    max_response_bytes: int = Field(4096, ge=0)
    # Retries: exponential from the base, each wait at most the cap (a Retry-After too),
    # for at most max_age_s after the first attempt.
    backoff_base_s: float = Field(10.0, gt=0)
    backoff_cap_s: float = Field(3600.0, gt=0)
    max_age_s: float = Field(86400.0, gt=0)
    # How long a rotated-out secret still signs every event beside the new one.
    secret_grace_s: float = Field(86400.0, ge=0)
    # The delivery worker: how often it looks for due events, how many it sends at once,
    # and how long a claimed event stays its own before another process may take it over.
    poll_interval_s: float = Field(1.0, gt=0)
    concurrency: int = Field(8, ge=1)
    lease_s: float = Field(60.0, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> WebhooksConfig:
        if self.connect_timeout_s > self.timeout_s:
            raise ValueError("connect_timeout_s: must not exceed timeout_s")
        if self.backoff_base_s > self.backoff_cap_s:
            raise ValueError("backoff_base_s: must not exceed backoff_cap_s")
        if self.lease_s <= self.timeout_s:
            # A lease that ran out mid-attempt would let a second process send the same try.
            raise ValueError("lease_s: must exceed timeout_s")
        return self
