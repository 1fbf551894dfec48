"""Reads from the S3 archive without the S3 client on the path of each request.

A download's first byte waits on everything before it: botocore builds, validates, signs and
parses every call through its event hooks, several milliseconds of CPU per GET on a busy
machine, more than the S3 server takes to answer. A presigned GET URL carries the signature
in its query and leaves the Range header unsigned, so one URL per object, signed once and
reused while it is fresh, serves every range of it with one plain HTTP request.

The URLs never leave this module (no log, no error message holds one). An answer other than
the object, a range, 404 or 416 (say 403 once the credentials behind a URL rotated) is the
caller's cue to ask again through the S3 client, which says what went wrong.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from email.utils import parsedate_to_datetime

import aiohttp

from gateway.archive.storage import BlobInfo

# Signed for 15 minutes, used for 10: a request started on a URL always finds it valid.
SIGNED_FOR_S = 900
REUSED_FOR_S = 600
CACHED_URLS = 4096
ANSWERED = (200, 206, 404, 416)


@dataclass(frozen=True, slots=True)
class Answer:
    """The server's answer to a presigned GET: its status, and the response to read or free."""

    status: int
    response: aiohttp.ClientResponse

    def info(self, key: str) -> BlobInfo:
        headers = self.response.headers
        size = int(headers.get("content-length") or 0)
        found = (headers.get("content-range") or "").rpartition("/")[2]
        if self.status == 206 and found.isdigit():
            size = int(found)
        return BlobInfo(key=key, size=size,
                        content_type=headers.get("content-type") or "application/octet-stream",
                        last_modified=_date(headers.get("last-modified")),
                        sha256=headers.get("x-amz-meta-sha256"))


def _date(value: str | None) -> datetime:
    if value:
        try:
            return parsedate_to_datetime(value)
        except (TypeError, ValueError, IndexError):
            pass
    return datetime.fromtimestamp(0).astimezone()


class PresignedReads:
    def __init__(self, sign: Callable[[str, int], Awaitable[str]], *, chunk_size: int,
                 connections: int, read_timeout_s: float) -> None:
        self._sign = sign
        self._chunk_size = chunk_size
        self._connections = connections
        self._read_timeout_s = read_timeout_s
        self._urls: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._http: aiohttp.ClientSession | None = None
        self._lock = asyncio.Lock()

    async def _session(self) -> aiohttp.ClientSession:
        async with self._lock:  # made on first use: it belongs to the running loop
            if self._http is None:
                self._http = aiohttp.ClientSession(
                    connector=aiohttp.TCPConnector(limit=self._connections),
                    timeout=aiohttp.ClientTimeout(sock_connect=10,
                                                  sock_read=self._read_timeout_s),
                    auto_decompress=False, read_bufsize=self._chunk_size)
            return self._http

    async def _url(self, name: str) -> str:
        cached = self._urls.get(name)
        if cached is not None and cached[1] > time.monotonic():
            self._urls.move_to_end(name)
            return cached[0]
        url = await self._sign(name, SIGNED_FOR_S)
        self._urls[name] = (url, time.monotonic() + REUSED_FOR_S)
        while len(self._urls) > CACHED_URLS:
            self._urls.popitem(last=False)
        return url

    def forget(self, name: str) -> None:
        self._urls.pop(name, None)

    async def get(self, name: str, range_header: str | None) -> Answer | None:
        """The object's answer, or None (the URL is dropped) when the client must ask."""
        http, url = await self._session(), await self._url(name)
        response = await http.get(url, headers={"Range": range_header} if range_header else {},
                                  allow_redirects=False)
        if response.status in ANSWERED:
            return Answer(response.status, response)
        response.release()
        self.forget(name)
        return None

    async def aclose(self) -> None:
        async with self._lock:
            if self._http is not None:
                await self._http.close()
                self._http = None
            self._urls.clear()
