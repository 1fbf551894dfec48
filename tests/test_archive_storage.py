"""The archive's storage seam: the same behaviour from the local directory and from a real
S3-compatible server, and the signed links that hand its content out."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import socket
import threading
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import httpx
import pytest

from gateway.archive import links
from gateway.archive.config import ArchiveConfig, S3Config, open_store
from gateway.archive.links import LinkVerdict
from gateway.archive.local import STALE_PARTIAL_S, LocalStore
from gateway.archive.s3 import PART_SIZE, S3Store
from gateway.archive.storage import (
    BlobNotFound,
    BlobStore,
    ByteRange,
    InvalidKey,
    LengthMismatch,
    RangeNotSatisfiable,
    StorageError,
)
from tests.support.s3 import S3Server

T = TypeVar("T")
MiB = 1024 * 1024


class SourceFailed(ConnectionResetError):
    """The upstream download breaking off: the caller's own exception, and an OSError, which
    the store must not mistake for one of its own."""


def data_of(size: int, seed: int = 0) -> bytes:
    return random.Random(seed).randbytes(size)


async def stream(data: bytes, chunk: int = 64 * 1024, fail_at: int | None = None,
                 ) -> AsyncIterator[bytes]:
    for start in range(0, len(data), chunk):
        if fail_at is not None and start >= fail_at:
            raise SourceFailed("connection reset by the upstream")
        yield data[start:start + chunk]
        await asyncio.sleep(0)


def run(config: ArchiveConfig, scenario: Callable[[BlobStore], Awaitable[T]]) -> T:
    async def main() -> T:
        store = open_store(config)
        try:
            return await scenario(store)
        finally:
            await store.aclose()

    return asyncio.run(main())


@pytest.fixture(params=["local", "s3"])
def archive(request: pytest.FixtureRequest, tmp_path: Path) -> ArchiveConfig:
    """One backend's config; the S3 one writes under a prefix of its own in the test bucket."""
    if request.param == "local":
        return ArchiveConfig(dir=str(tmp_path / "archive"))
    server: S3Server = request.getfixturevalue("s3_server")
    return ArchiveConfig(backend="s3", s3=server.config(prefix=f"t-{uuid.uuid4().hex[:8]}"))


def leftovers(config: ArchiveConfig, request: pytest.FixtureRequest) -> list[str]:
    """What a failed put could have left behind where the store keeps its bytes."""
    if config.backend == "local":
        root = Path(config.dir)
        return [str(path.relative_to(root)) for path in root.rglob("*") if path.is_file()]
    assert config.s3 is not None
    client = request.getfixturevalue("s3_server").client()
    try:
        bucket, prefix = config.s3.bucket, config.s3.prefix
        uploads = client.list_multipart_uploads(Bucket=bucket, Prefix=prefix).get("Uploads", [])
        objects = client.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
        return [f"upload {item['Key']}" for item in uploads] + [item["Key"] for item in objects]
    finally:
        client.close()


class TestBlobStore:
    def test_put_returns_the_length_and_sha256_that_stat_then_reports(
            self, archive: ArchiveConfig) -> None:
        data = data_of(300_000)

        async def scenario(store: BlobStore) -> tuple[Any, Any]:
            stored = await store.put("vid_1/video", stream(data), "video/mp4")
            return stored, await store.stat("vid_1/video")

        stored, info = run(archive, scenario)

        assert (stored.key, stored.size) == ("vid_1/video", len(data))
        assert stored.sha256 == hashlib.sha256(data).hexdigest()
        assert (info.size, info.sha256, info.content_type) == (len(data), stored.sha256,
                                                              "video/mp4")
        assert abs(info.last_modified - datetime.now(UTC)) < timedelta(minutes=1)

    def test_open_reads_back_the_whole_blob(self, archive: ArchiveConfig) -> None:
        data = data_of(2 * MiB + 17, seed=1)

        async def scenario(store: BlobStore) -> tuple[bytes, Any]:
            await store.put("vid_2/video", stream(data), "video/mp4")
            async with await store.open("vid_2/video") as blob:
                return await blob.read(), (blob.offset, blob.stop, blob.partial, blob.info)

        content, (offset, stop, partial, info) = run(archive, scenario)

        assert content == data
        assert (offset, stop, partial) == (0, len(data), False)
        assert (info.size, info.sha256) == (len(data), hashlib.sha256(data).hexdigest())

    def test_byte_ranges_read_exactly_their_bytes(self, archive: ArchiveConfig) -> None:
        data = data_of(1000, seed=2)
        ranges = {
            "first byte": (ByteRange(0, 0), data[:1], 0),
            "last byte": (ByteRange(999, 999), data[999:], 999),
            "middle": (ByteRange(10, 19), data[10:20], 10),
            "to the end": (ByteRange(995), data[995:], 995),
            "suffix": (ByteRange.last(7), data[-7:], 993),
            "end past the size": (ByteRange(990, 5000), data[990:], 990),
            "suffix past the size": (ByteRange.last(5000), data, 0),
        }

        async def scenario(store: BlobStore) -> dict[str, tuple[bytes, int, int]]:
            await store.put("vid_3/video", stream(data, chunk=100), "video/mp4")
            read = {}
            for name, (byte_range, _, _) in ranges.items():
                async with await store.open("vid_3/video", byte_range) as blob:
                    read[name] = (await blob.read(), blob.offset, blob.info.size)
            return read

        read = run(archive, scenario)

        for name, (_, expected, offset) in ranges.items():
            assert read[name] == (expected, offset, 1000), name

    def test_a_range_past_the_end_is_unsatisfiable_and_tells_the_size(
            self, archive: ArchiveConfig) -> None:
        async def scenario(store: BlobStore) -> None:
            await store.put("vid_4/video", stream(b"x" * 100), "video/mp4")
            await store.open("vid_4/video", ByteRange(100))

        with pytest.raises(RangeNotSatisfiable) as raised:
            run(archive, scenario)
        assert raised.value.size == 100

    def test_an_empty_blob_round_trips(self, archive: ArchiveConfig) -> None:
        async def scenario(store: BlobStore) -> tuple[Any, bytes]:
            stored = await store.put("vid_5/empty", stream(b""), "image/webp")
            async with await store.open("vid_5/empty") as blob:
                return stored, await blob.read()

        stored, content = run(archive, scenario)

        assert (stored.size, stored.sha256, content) == (0, hashlib.sha256().hexdigest(), b"")

    def test_an_absent_key_is_none_to_stat_and_not_found_to_open(
            self, archive: ArchiveConfig) -> None:
        async def scenario(store: BlobStore) -> Any:
            await store.delete("vid_6/video")  # deleting what is not there is no error
            assert await store.stat("vid_6/video") is None
            await store.open("vid_6/video", ByteRange(0, 10))

        with pytest.raises(BlobNotFound):
            run(archive, scenario)

    def test_delete_removes_the_blob(self, archive: ArchiveConfig) -> None:
        async def scenario(store: BlobStore) -> tuple[Any, list[str]]:
            await store.put("vid_7/video", stream(b"abc"), "video/mp4")
            await store.put("vid_7/thumbnail", stream(b"def"), "image/webp")
            await store.delete("vid_7/video")
            return (await store.stat("vid_7/video"),
                    [entry.key async for entry in store.list_blobs()])

        info, keys = run(archive, scenario)

        assert info is None
        assert keys == ["vid_7/thumbnail"]

    def test_list_names_the_blobs_under_a_prefix_with_size_and_age(
            self, archive: ArchiveConfig) -> None:
        async def scenario(store: BlobStore) -> tuple[list[Any], list[str]]:
            for key, size in (("vid_8a/video", 10), ("vid_8a/thumbnail", 3),
                              ("vid_8b/video", 5)):
                await store.put(key, stream(b"z" * size), "application/octet-stream")
            under = [entry async for entry in store.list_blobs("vid_8a/")]
            return under, [entry.key async for entry in store.list_blobs("vid_8")]

        under, everything = run(archive, scenario)

        assert [(entry.key, entry.size) for entry in under] == [("vid_8a/thumbnail", 3),
                                                                ("vid_8a/video", 10)]
        assert all(abs(entry.last_modified - datetime.now(UTC)) < timedelta(minutes=1)
                   for entry in under)
        assert everything == ["vid_8a/thumbnail", "vid_8a/video", "vid_8b/video"]

    def test_a_second_put_replaces_the_first(self, archive: ArchiveConfig) -> None:
        async def scenario(store: BlobStore) -> tuple[bytes, Any]:
            await store.put("vid_9/video", stream(b"old" * 1000), "video/mp4")
            await store.put("vid_9/video", stream(b"new!"), "video/webm")
            async with await store.open("vid_9/video") as blob:
                return await blob.read(), blob.info

        content, info = run(archive, scenario)

        assert content == b"new!"
        assert (info.size, info.content_type) == (4, "video/webm")
        assert info.sha256 == hashlib.sha256(b"new!").hexdigest()

    def test_a_stream_that_breaks_midway_leaves_nothing_behind(
            self, archive: ArchiveConfig, request: pytest.FixtureRequest) -> None:
        # Past two S3 parts, so a multipart upload was under way when the source broke.
        data = data_of(2 * PART_SIZE + MiB, seed=3)

        async def scenario(store: BlobStore) -> None:
            await store.put("vid_10/video", stream(data, fail_at=len(data) - MiB), "video/mp4")

        with pytest.raises(SourceFailed):
            run(archive, scenario)
        assert leftovers(archive, request) == []

    def test_a_stream_of_another_length_than_expected_is_not_kept(
            self, archive: ArchiveConfig, request: pytest.FixtureRequest) -> None:
        async def scenario(store: BlobStore) -> None:
            await store.put("vid_11/video", stream(data_of(PART_SIZE + 1)), "video/mp4",
                            expected_size=PART_SIZE + 2)

        with pytest.raises(LengthMismatch):
            run(archive, scenario)
        assert leftovers(archive, request) == []

    @pytest.mark.parametrize("key", ["../escape", "/absolute", "a//b", ".hidden", "a/../b",
                                     "", "a/", "sp ace", "new\nline"])
    def test_keys_that_could_leave_the_store_are_refused(
            self, archive: ArchiveConfig, key: str) -> None:
        async def scenario(store: BlobStore) -> None:
            await store.put(key, stream(b"x"), "video/mp4")

        with pytest.raises(InvalidKey):
            run(archive, scenario)

    def test_a_content_type_that_could_split_a_header_is_refused(
            self, archive: ArchiveConfig) -> None:
        async def scenario(store: BlobStore) -> None:
            await store.put("vid_12/video", stream(b"x"), "video/mp4\r\nSet-Cookie: a=b")

        with pytest.raises(ValueError, match="content type"):
            run(archive, scenario)


class TestLocalStore:
    def test_the_bytes_lie_on_disk_as_a_plain_file(self, tmp_path: Path) -> None:
        async def scenario(store: BlobStore) -> None:
            await store.put("vid_1/video", stream(b"plain mp4"), "video/mp4")

        run(ArchiveConfig(dir=str(tmp_path)), scenario)

        assert (tmp_path / "data" / "vid_1" / "video").read_bytes() == b"plain mp4"

    def test_a_writer_that_died_leaves_a_partial_that_the_next_start_drops(
            self, tmp_path: Path) -> None:
        LocalStore(tmp_path)
        stale, fresh = tmp_path / "tmp" / "dead.part", tmp_path / "tmp" / "live.part"
        stale.write_bytes(b"half")
        fresh.write_bytes(b"half")
        an_hour_and_more = time.time() - STALE_PARTIAL_S - 60
        os.utime(stale, (an_hour_and_more, an_hour_and_more))

        LocalStore(tmp_path)

        assert not stale.exists()
        assert fresh.exists()  # another process on the same directory may still be writing it

    def test_a_symlink_out_of_the_archive_is_not_followed(self, tmp_path: Path) -> None:
        outside = tmp_path / "outside"
        outside.mkdir()
        LocalStore(tmp_path / "archive")
        (tmp_path / "archive" / "data" / "vid_1").symlink_to(outside)

        async def scenario(store: BlobStore) -> None:
            await store.put("vid_1/video", stream(b"x"), "video/mp4")

        with pytest.raises(StorageError, match="outside"):
            run(ArchiveConfig(dir=str(tmp_path / "archive")), scenario)
        assert list(outside.iterdir()) == []


def _within_a_second(port: int, scenario: Callable[[S3Store], Awaitable[T]]) -> T:
    """``scenario`` on a store of a server on ``port``, each request bounded to one second."""
    config = S3Config(endpoint_url=f"http://127.0.0.1:{port}", bucket="slow",
                      access_key="a", secret_key="b")

    async def bounded() -> T:
        store = S3Store(config, timeout_s=1.0)
        try:
            return await scenario(store)
        finally:
            await store.aclose()
    return asyncio.run(bounded())


class TestS3Store:
    def test_a_40_mib_video_round_trips_through_a_multipart_upload(
            self, s3_server: S3Server) -> None:
        data = data_of(40 * MiB, seed=4)
        config = s3_server.config(prefix=f"big-{uuid.uuid4().hex[:8]}")

        async def scenario(store: BlobStore) -> tuple[Any, str]:
            stored = await store.put("vid_big/video", stream(data), "video/mp4")
            digest = hashlib.sha256()
            async with await store.open("vid_big/video") as blob:
                async for chunk in blob:
                    digest.update(chunk)
            return stored, digest.hexdigest()

        stored, read_digest = run(ArchiveConfig(backend="s3", s3=config), scenario)

        expected = hashlib.sha256(data).hexdigest()
        assert (stored.size, stored.sha256, read_digest) == (len(data), expected, expected)
        head = self._head(s3_server, config, "vid_big/video")
        assert head["ETag"].strip('"').endswith("-5")  # five 8 MiB parts
        assert head["Metadata"] == {"sha256": expected}
        assert head["ContentType"] == "video/mp4"

    @pytest.mark.parametrize(("size", "parts"), [(PART_SIZE, None), (PART_SIZE + 1, "-2")])
    def test_one_part_exactly_is_a_single_upload_one_byte_more_is_multipart(
            self, s3_server: S3Server, size: int, parts: str | None) -> None:
        config = s3_server.config(prefix=f"edge-{uuid.uuid4().hex[:8]}")
        data = data_of(size, seed=5)

        async def scenario(store: BlobStore) -> bytes:
            await store.put("vid_edge/video", stream(data, chunk=MiB), "video/mp4")
            async with await store.open("vid_edge/video") as blob:
                return await blob.read()

        assert run(ArchiveConfig(backend="s3", s3=config), scenario) == data
        etag = self._head(s3_server, config, "vid_edge/video")["ETag"].strip('"')
        assert etag.endswith(parts) if parts else "-" not in etag

    def test_a_presigned_url_reads_without_credentials_and_a_tampered_one_is_refused(
            self, s3_server: S3Server) -> None:
        data = data_of(50_000, seed=6)
        config = ArchiveConfig(backend="s3", s3=s3_server.config(prefix="presign"))

        async def scenario(store: BlobStore) -> str | None:
            await store.put("vid_share/video", stream(data), "video/mp4")
            return await store.presign("vid_share/video", 60)

        url = run(config, scenario)
        assert url is not None
        parts = urlsplit(url)
        query = dict(parse_qsl(parts.query))
        signature = query["X-Amz-Signature"]
        query["X-Amz-Signature"] = ("0" if signature[0] != "0" else "1") + signature[1:]
        tampered = urlunsplit(parts._replace(query=urlencode(query)))

        fetched, ranged = httpx.get(url), httpx.get(url, headers={"Range": "bytes=5-9"})
        refused = httpx.get(tampered)

        assert (fetched.status_code, fetched.content) == (200, data)
        assert (ranged.status_code, ranged.content) == (206, data[5:10])
        assert refused.status_code == 403

    def test_a_local_archive_has_no_urls_of_its_own(self, tmp_path: Path) -> None:
        async def scenario(store: BlobStore) -> str | None:
            await store.put("vid_x/video", stream(b"x"), "video/mp4")
            return await store.presign("vid_x/video", 60)

        assert run(ArchiveConfig(dir=str(tmp_path)), scenario) is None

    def test_wrong_credentials_are_a_storage_error_that_names_no_secret(
            self, s3_server: S3Server) -> None:
        wrong = "wrong-" + uuid.uuid4().hex
        config = s3_server.config().model_copy(update={"secret_key": wrong})

        async def scenario(store: BlobStore) -> None:
            await store.put("vid_1/video", stream(b"x"), "video/mp4")

        with pytest.raises(StorageError) as raised:
            run(ArchiveConfig(backend="s3", s3=config), scenario)
        assert type(raised.value) is StorageError
        assert "SignatureDoesNotMatch" in str(raised.value)
        assert wrong not in str(raised.value)
        assert s3_server.endpoint_url not in str(raised.value)

    def test_a_read_the_server_refuses_says_why_and_names_no_secret(
            self, s3_server: S3Server) -> None:
        # Reads go by presigned URL; one refused is asked again through the S3 client,
        # whose error code is the one that surfaces.
        config = s3_server.config(prefix=f"refused-{uuid.uuid4().hex[:8]}")
        wrong = "wrong-" + uuid.uuid4().hex

        async def put(store: BlobStore) -> None:
            await store.put("vid_1/video", stream(b"kept"), "video/mp4")

        async def read(store: BlobStore) -> bytes:
            async with await store.open("vid_1/video") as blob:
                return await blob.read()

        run(ArchiveConfig(backend="s3", s3=config), put)
        assert run(ArchiveConfig(backend="s3", s3=config), read) == b"kept"
        with pytest.raises(StorageError) as raised:
            run(ArchiveConfig(backend="s3", s3=config.model_copy(
                update={"secret_key": wrong})), read)
        assert "SignatureDoesNotMatch" in str(raised.value)
        assert wrong not in str(raised.value)
        assert "X-Amz-Signature" not in str(raised.value)

    def test_an_unreachable_server_is_a_storage_error(self) -> None:
        from tests.support.servers import free_port

        config = S3Config(endpoint_url=f"http://127.0.0.1:{free_port()}", bucket="nowhere",
                          access_key="a", secret_key="b")

        async def scenario(store: BlobStore) -> None:
            await store.put("vid_1/video", stream(b"x"), "video/mp4")

        with pytest.raises(StorageError, match="s3 put"):
            run(ArchiveConfig(backend="s3", s3=config), scenario)

    def test_a_server_that_stops_answering_is_a_storage_error_not_a_hang(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts, never answers
            port = silent.getsockname()[1]

            async def scenario(store: S3Store) -> None:
                await store.put("vid_1/video", stream(data_of(PART_SIZE)), "video/mp4")

            began = time.monotonic()
            with pytest.raises(StorageError, match="TimeoutError"):
                _within_a_second(port, scenario)
        assert time.monotonic() - began < 10

    def test_a_read_that_stalls_midway_is_a_storage_error_not_a_hang(self) -> None:
        with socket.create_server(("127.0.0.1", 0)) as stalling:
            port = stalling.getsockname()[1]

            def answer_then_stall() -> None:  # the headers and 3 of 100 bytes, then nothing
                connection, _ = stalling.accept()
                connection.recv(65536)
                connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n"
                                   b"Content-Type: video/mp4\r\n\r\nabc")
                connection.recv(1)  # until the client gives up and closes
                connection.close()

            server = threading.Thread(target=answer_then_stall, daemon=True)
            server.start()

            async def scenario(store: S3Store) -> bytes:
                async with await store.open("vid_1/video") as blob:
                    return await blob.read()

            began = time.monotonic()
            with pytest.raises(StorageError, match="s3 read"):
                _within_a_second(port, scenario)
        assert time.monotonic() - began < 10
        server.join(timeout=10)

    def test_a_part_smaller_than_s3_allows_is_refused(self, s3_server: S3Server) -> None:
        with pytest.raises(ValueError, match="part_size"):
            S3Store(s3_server.config(), part_size=MiB)

    @staticmethod
    def _head(server: S3Server, config: S3Config, key: str) -> dict[str, Any]:
        client = server.client()
        try:
            head: dict[str, Any] = client.head_object(Bucket=config.bucket,
                                                      Key=config.prefix + key)
            return head
        finally:
            client.close()


class TestArchiveConfig:
    def test_s3_needs_its_section(self) -> None:
        with pytest.raises(ValueError, match="s3: required"):
            ArchiveConfig(backend="s3")

    def test_redirect_needs_a_backend_with_urls(self) -> None:
        with pytest.raises(ValueError, match="redirect"):
            ArchiveConfig(redirect=True)

    def test_unknown_keys_are_refused(self) -> None:
        with pytest.raises(ValueError, match="retention"):
            ArchiveConfig.model_validate({"retention": 3})

    def test_the_prefix_is_a_folder(self) -> None:
        config = S3Config(bucket="videos", prefix="/gateway/prod/")
        assert config.prefix == "gateway/prod/"
        with pytest.raises(ValueError, match="prefix"):
            S3Config(bucket="videos", prefix="../up")

    def test_the_secret_key_stays_out_of_the_repr(self) -> None:
        config = S3Config(bucket="videos", access_key="AK", secret_key="very-secret")
        assert "very-secret" not in repr(config)


class TestSignedLinks:
    SECRET = "gateway-secret"
    NOW = 1_800_000_000

    def params(self, video_id: str = "video_1", variant: str = "video",
               expires: int = NOW + 600) -> dict[str, str]:
        return links.sign(self.SECRET, video_id, variant, expires)

    def check(self, params: dict[str, str], video_id: str = "video_1", variant: str = "video",
              now: float = NOW, secret: str = SECRET) -> LinkVerdict:
        return links.verify(secret, video_id, variant, params.get("expires"),
                            params.get("signature"), now=now)

    def test_a_link_is_valid_until_it_expires(self) -> None:
        params = self.params()
        assert self.check(params) is LinkVerdict.VALID
        assert self.check(params, now=self.NOW + 599.9) is LinkVerdict.VALID
        assert self.check(params, now=self.NOW + 600) is LinkVerdict.EXPIRED

    def test_a_tampered_signature_is_invalid(self) -> None:
        params = self.params()
        flipped = ("A" if params["signature"][0] != "A" else "B") + params["signature"][1:]
        assert self.check({**params, "signature": flipped}) is LinkVerdict.INVALID
        assert self.check({**params, "signature": params["signature"][:-1]}) \
            is LinkVerdict.INVALID
        assert self.check({**params, "signature": "é" * 43}) is LinkVerdict.INVALID

    def test_a_later_expiry_with_the_old_signature_is_invalid(self) -> None:
        params = self.params(expires=self.NOW - 10)
        extended = {**params, "expires": str(self.NOW + 10_000)}
        assert self.check(params) is LinkVerdict.EXPIRED
        assert self.check(extended) is LinkVerdict.INVALID

    def test_a_link_opens_only_its_own_video_and_variant(self) -> None:
        params = self.params()
        assert self.check(params, variant="thumbnail") is LinkVerdict.INVALID
        assert self.check(params, video_id="video_2") is LinkVerdict.INVALID

    def test_another_gateways_secret_does_not_verify_it(self) -> None:
        assert self.check(self.params(), secret="another-secret") is LinkVerdict.INVALID

    @pytest.mark.parametrize("params", [{}, {"expires": "1900000000"}, {"signature": "abc"},
                                        {"expires": "soon", "signature": "abc"},
                                        {"expires": "-1", "signature": "abc"},
                                        {"expires": "9" * 40, "signature": "abc"}])
    def test_missing_or_malformed_parameters_are_invalid(self, params: dict[str, str]) -> None:
        assert self.check(params) is LinkVerdict.INVALID

    def test_the_signature_is_url_safe(self) -> None:
        signature = self.params()["signature"]
        assert len(signature) == 43
        assert not set(signature) & set("+/=")

    def test_fields_that_could_blur_the_signed_message_are_refused(self) -> None:
        with pytest.raises(ValueError, match="video_id"):
            links.sign(self.SECRET, "video_1\nthumbnail", "video", self.NOW)
