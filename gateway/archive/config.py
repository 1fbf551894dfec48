"""The ``archive:`` section of the configuration, and the store it opens."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

if TYPE_CHECKING:
    from gateway.archive.storage import BlobStore

_PREFIX = re.compile(r"(?:[A-Za-z0-9_][A-Za-z0-9._-]*/)*")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class S3Config(_Strict):
    """Any S3-compatible store, addressed path-style and signed with SigV4."""

    # None: AWS itself, found from the region.
    endpoint_url: str | None = None
    bucket: str = Field(min_length=3, max_length=63)
    region: str = "us-east-1"
    # Both or neither: with neither, credentials come from the environment the way the
    # AWS tools find them (variables, profile, instance role).
    access_key: str | None = None
    secret_key: str | None = Field(None, repr=False)
    # Keys of this gateway's objects start with it, so one bucket can serve several uses.
    prefix: str = ""

    @field_validator("endpoint_url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/") if value else value

    @field_validator("prefix")
    @classmethod
    def _folder(cls, value: str) -> str:
        value = value.strip("/")
        value = f"{value}/" if value else ""
        if not _PREFIX.fullmatch(value):
            raise ValueError("must be /-separated names of letters, digits, '.', '_' or '-'")
        return value

    @model_validator(mode="after")
    def _key_pair(self) -> S3Config:
        if (self.access_key is None) != (self.secret_key is None):
            raise ValueError("access_key and secret_key go together")
        return self


class ArchiveConfig(_Strict):
    backend: Literal["local", "s3"] = "local"
    # The local backend's directory.
    dir: str = "./archive"
    s3: S3Config | None = None
    # On s3, answer content requests with a 302 to a short-lived presigned URL instead of
    # streaming the bytes through the gateway (a HEAD's URL is presigned for HEAD).
    redirect: bool = False
    # How long a stored video is kept unless its group says otherwise; None keeps it forever.
    retention_days: float | None = Field(7, gt=0)
    # When the upstream does not say how long its links live, how long after completion a
    # failing copy is retried before the video is given up as not archived.
    give_up_after_s: float = Field(3 * 86400, gt=0)
    # Videos copied at once by one process.
    concurrency: int = Field(4, ge=1)
    # A failed copy is tried again after this, doubling each time up to retry_max_s.
    retry_after_s: float = Field(5.0, gt=0)
    retry_max_s: float = Field(600.0, gt=0)
    # How often the retention sweeper looks for videos past their time.
    sweep_every_s: float = Field(300.0, gt=0)
    # How long a redirect's presigned URL works: enough to start the download.
    redirect_expires_s: int = Field(300, ge=1, le=7 * 86400)

    @model_validator(mode="after")
    def _backend_settings(self) -> ArchiveConfig:
        if self.backend == "s3" and self.s3 is None:
            raise ValueError("s3: required when backend is s3")
        if self.redirect and self.backend != "s3":
            raise ValueError("redirect: needs backend s3 (a local archive has no URL of its own)")
        return self


def open_store(config: ArchiveConfig) -> BlobStore:
    """The store the config names; close it with ``aclose`` when the application stops."""
    if config.backend == "s3":
        assert config.s3 is not None  # the model's validator guarantees it
        # Imported here so that a gateway on the local default never loads the S3 client.
        from gateway.archive.s3 import S3Store

        return S3Store(config.s3)
    from gateway.archive.local import LocalStore

    return LocalStore(Path(config.dir))
