"""Flavor ``compat``: the reseller dialect of the OpenAI format (new-api, laozhang, apiyi).

Statuses ``processing``/``succeeded``/``failed``, ``seconds`` as a number, and a finished job
that carries a ``video_url`` (or ``url``) to download from instead of a content route.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any

from gateway.upstreams.auth import Bearer
from gateway.upstreams.flavor import ContentStream, CreateRequest
from gateway.upstreams.http import UpstreamHTTP
from gateway.upstreams.openai import VARIANTS, OpenAIFlavor
from gateway.upstreams.outcome import Asset
from gateway.upstreams.sanitize import UpstreamSecrets
from gateway.upstreams.transport import UpstreamClient


def _download_url(data: dict[str, Any]) -> str | None:
    for field in ("video_url", "url"):
        value = data.get(field)
        if isinstance(value, str) and value.startswith(("http://", "https://")):
            return value
    return None


class CompatFlavor(OpenAIFlavor):
    def assets(self, data: dict[str, Any]) -> tuple[Asset, ...]:
        url = _download_url(data)
        return tuple(Asset(variant, url if variant == "video" else None)
                     for variant in VARIANTS)

    def create_fields(self, request: CreateRequest) -> dict[str, Any]:
        fields = super().create_fields(request)
        fields["seconds"] = request.seconds
        return fields

    @asynccontextmanager
    async def content(self, upstream_id: str, state: Mapping[str, str], key: str, *,
                      variant: str, url: str | None,
                      range_header: str | None) -> AsyncIterator[ContentStream]:
        if variant != "video" or not url:
            async with super().content(upstream_id, state, key, variant=variant, url=url,
                                       range_header=range_header) as stream:
                yield stream
            return
        # The download URL is pre-signed and may live on another host: never send our key there.
        headers = {"Range": range_header} if range_header else {}
        async with self.http.open(self.http.request("GET", url, None, headers=headers)) as stream:
            yield stream


def make(name: str, base_url: str, client: UpstreamClient, timeout_s: float,
         secrets: UpstreamSecrets | None = None) -> CompatFlavor:
    return CompatFlavor(UpstreamHTTP(name, base_url, client, timeout_s, Bearer(),
                                     secrets=secrets))
