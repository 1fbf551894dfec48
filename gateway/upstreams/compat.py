"""Adapter for the reseller dialect: processing/succeeded/failed and a download URL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from gateway.upstreams.base import SubmitRequest
from gateway.upstreams.openai import OpenAIAdapter


class CompatAdapter(OpenAIAdapter):
    def content_url_of(self, data: dict[str, Any]) -> str | None:
        for field in ("video_url", "url"):
            value = data.get(field)
            if isinstance(value, str) and value.startswith(("http://", "https://")):
                return value
        return None

    def create_fields(self, request: SubmitRequest) -> dict[str, Any]:
        fields = super().create_fields(request)
        fields["seconds"] = request.seconds
        return fields

    @asynccontextmanager
    async def content(self, upstream_id: str, key: str, *, variant: str, content_url: str | None,
                      range_header: str | None) -> AsyncIterator[httpx.Response]:
        if variant != "video" or not content_url:
            async with super().content(upstream_id, key, variant=variant, content_url=content_url,
                                       range_header=range_header) as response:
                yield response
            return
        # The download URL is pre-signed and may live on another host: never send our key there.
        headers = {"Range": range_header} if range_header else {}
        built = self.client.build_request("GET", content_url, headers=headers,
                                          timeout=self.timeout)
        response = await self._open(built, upstream_id)
        try:
            yield response
        finally:
            await response.aclose()
