"""The archive in a local directory: the embedded default, nothing to install.

Layout under the root: ``data/<key>`` holds the bytes as they are (an operator can play a
video straight from the disk), ``meta/<key>.json`` its content type, size and sha256, ``tmp/``
the writes in progress. A put writes and fsyncs a temporary file and renames it into place,
then its metadata the same way: the metadata's rename is the moment the blob exists, so a
reader never sees half a blob, and a crash leaves at most a stray file in ``tmp/``.
File IO runs in worker threads in large chunks, so the event loop never waits on the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import json
import os
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, TypeVar

from gateway.archive.storage import (
    CHUNK_SIZE,
    BlobEntry,
    BlobInfo,
    BlobNotFound,
    BlobRead,
    ByteRange,
    LengthMismatch,
    StorageError,
    Stored,
    check_content_type,
    check_key,
)

T = TypeVar("T")

# A temporary file this old belongs to a writer that died (a live one renames within seconds
# of its last chunk); another process on the same directory may still own a younger one.
STALE_PARTIAL_S = 3600.0


async def _off_loop(fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn`` in a worker thread. A cancelled caller still waits for the thread to finish,
    so the cleanup that follows never races a write or read still running on the same file."""
    future = asyncio.get_running_loop().run_in_executor(None, functools.partial(fn, *args))
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        await asyncio.wait([future])
        raise


def _write(file: IO[bytes], hasher: Any, data: bytes) -> None:
    hasher.update(data)  # hashlib releases the GIL on large buffers: this runs in parallel
    file.write(data)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _move(source: Path, target: Path) -> None:
    """An atomic rename into a folder that a concurrent delete may have just pruned."""
    for attempt in range(3):
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.replace(source, target)
            return
        except FileNotFoundError:
            if attempt == 2 or not source.exists():
                raise


def _prune(folder: Path, top: Path) -> None:
    """Removes the folders a delete left empty, up to the store's own."""
    while folder != top and folder.is_relative_to(top):
        try:
            folder.rmdir()
        except OSError:  # not empty (or already gone): the folders above are in use too
            return
        folder = folder.parent


def _mtime(stat: os.stat_result) -> datetime:
    return datetime.fromtimestamp(stat.st_mtime, UTC)


class LocalStore:
    def __init__(self, root: Path, *, chunk_size: int = CHUNK_SIZE) -> None:
        self.root = root.resolve()
        self._data = self.root / "data"
        self._meta = self.root / "meta"
        self._tmp = self.root / "tmp"
        self.chunk_size = chunk_size
        try:
            for path in (self._data, self._meta, self._tmp):
                path.mkdir(parents=True, exist_ok=True)
            self._drop_stale_partials()
        except OSError as exc:
            raise StorageError(f"archive directory unusable: {exc.strerror}") from exc

    def _drop_stale_partials(self) -> None:
        cutoff = time.time() - STALE_PARTIAL_S
        for entry in os.scandir(self._tmp):
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)

    def _paths(self, key: str) -> tuple[Path, Path]:
        check_key(key)
        data, meta = self._data / key, self._meta / f"{key}.json"
        # check_key already rules out "..": this guards against a symlink planted in the tree.
        if not data.resolve().is_relative_to(self._data):
            raise StorageError(f"{key!r} resolves outside the archive")
        return data, meta

    async def put(self, key: str, stream: AsyncIterator[bytes], content_type: str, *,
                  expected_size: int | None = None) -> Stored:
        data, meta = self._paths(key)
        check_content_type(content_type)
        partial = self._tmp / f"{uuid.uuid4().hex}.part"
        try:
            file: IO[bytes] = await _off_loop(open, partial, "xb")
        except OSError as exc:
            raise StorageError(f"put {key!r} failed: {exc.strerror}") from exc
        try:
            size, digest = await self._fill(key, file, stream)
            if expected_size is not None and size != expected_size:
                raise LengthMismatch(key, expected_size, size)
            document = {"content_type": content_type, "size": size, "sha256": digest}
            await self._disk(key, self._commit, file, partial, data, meta, document)
        except BaseException:
            await _off_loop(self._discard, file, partial)
            raise
        return Stored(key=key, size=size, sha256=digest)

    async def _fill(self, key: str, file: IO[bytes], stream: AsyncIterator[bytes],
                    ) -> tuple[int, str]:
        hasher, size, buffer = hashlib.sha256(), 0, bytearray()
        async for chunk in stream:  # not translated: the caller's exceptions stay its own
            buffer += chunk
            if len(buffer) >= self.chunk_size:
                await self._disk(key, _write, file, hasher, buffer)
                size, buffer = size + len(buffer), bytearray()
        if buffer:
            await self._disk(key, _write, file, hasher, buffer)
            size += len(buffer)
        return size, hasher.hexdigest()

    @staticmethod
    async def _disk(key: str, fn: Callable[..., None], *args: Any) -> None:
        try:
            await _off_loop(fn, *args)
        except OSError as exc:
            raise StorageError(f"put {key!r} failed: {exc.strerror}") from exc

    def _commit(self, file: IO[bytes], partial: Path, data: Path, meta: Path,
                document: dict[str, Any]) -> None:
        file.flush()
        os.fsync(file.fileno())
        file.close()
        meta_partial = partial.with_suffix(".json")
        with open(meta_partial, "x") as meta_file:
            json.dump(document, meta_file)
            meta_file.flush()
            os.fsync(meta_file.fileno())
        _move(partial, data)
        _move(meta_partial, meta)
        _fsync_dir(data.parent)
        _fsync_dir(meta.parent)

    @staticmethod
    def _discard(file: IO[bytes], partial: Path) -> None:
        file.close()
        partial.unlink(missing_ok=True)
        partial.with_suffix(".json").unlink(missing_ok=True)

    def _read_info(self, key: str, data: Path, meta: Path) -> BlobInfo | None:
        try:
            document = json.loads(meta.read_text())
            stat = data.stat()
            size, content_type, digest = (document["size"], document["content_type"],
                                          document["sha256"])
        except FileNotFoundError:
            return None
        except (OSError, ValueError, LookupError, TypeError) as exc:
            raise StorageError(f"stat {key!r} failed: unreadable metadata") from exc
        if stat.st_size != size:
            return None  # a crash between the two renames of an overwrite
        return BlobInfo(key=key, size=size, content_type=content_type,
                        last_modified=_mtime(stat), sha256=digest)

    async def stat(self, key: str) -> BlobInfo | None:
        data, meta = self._paths(key)
        return await _off_loop(self._read_info, key, data, meta)

    def _open_file(self, key: str, data: Path, meta: Path) -> tuple[BlobInfo, IO[bytes]]:
        info = self._read_info(key, data, meta)
        if info is None:
            raise BlobNotFound(key)
        try:
            return info, open(data, "rb")
        except FileNotFoundError:
            raise BlobNotFound(key) from None
        except OSError as exc:
            raise StorageError(f"open {key!r} failed: {exc.strerror}") from exc

    async def open(self, key: str, byte_range: ByteRange | None = None) -> BlobRead:
        data, meta = self._paths(key)
        info, file = await _off_loop(self._open_file, key, data, meta)
        try:
            offset, stop = byte_range.resolve(key, info.size) if byte_range else (0, info.size)
            await _off_loop(file.seek, offset)
        except BaseException:
            await _off_loop(file.close)
            raise
        return BlobRead(info, offset, stop, self._chunks(key, file, stop - offset),
                        functools.partial(_off_loop, file.close))

    async def _chunks(self, key: str, file: IO[bytes], remaining: int) -> AsyncIterator[bytes]:
        while remaining > 0:
            try:
                chunk = await _off_loop(file.read, min(self.chunk_size, remaining))
            except (OSError, ValueError) as exc:  # ValueError: read after close
                raise StorageError(f"read {key!r} failed: {exc}") from exc
            if not chunk:
                raise StorageError(f"read {key!r} failed: the file shrank")
            remaining -= len(chunk)
            yield chunk

    async def delete(self, key: str) -> None:
        data, meta = self._paths(key)
        try:
            await _off_loop(self._unlink, meta, data)
        except OSError as exc:
            raise StorageError(f"delete {key!r} failed: {exc.strerror}") from exc

    def _unlink(self, meta: Path, data: Path) -> None:
        meta.unlink(missing_ok=True)  # first: the blob is gone the moment its metadata is
        data.unlink(missing_ok=True)
        for path, top in ((meta, self._meta), (data, self._data)):
            _prune(path.parent, top)

    async def list_blobs(self, prefix: str = "") -> AsyncIterator[BlobEntry]:
        try:
            entries = await _off_loop(self._scan, prefix)
        except OSError as exc:
            raise StorageError(f"list failed: {exc.strerror}") from exc
        for entry in entries:
            yield entry

    def _scan(self, prefix: str) -> list[BlobEntry]:
        # Walk only the directory the prefix names, not the whole archive.
        top = self._data / prefix.rpartition("/")[0]
        if not top.resolve().is_relative_to(self._data) or not top.is_dir():
            return []
        entries = []
        for folder, _, files in os.walk(top):
            for name in files:
                path = Path(folder, name)
                key = path.relative_to(self._data).as_posix()
                if key.startswith(prefix):
                    with contextlib.suppress(FileNotFoundError):  # deleted meanwhile
                        stat = path.stat()
                        entries.append(BlobEntry(key, stat.st_size, _mtime(stat)))
        return sorted(entries, key=lambda entry: entry.key)

    async def presign(self, key: str, expires_s: int, *, head: bool = False) -> str | None:
        check_key(key)
        return None  # a directory has no URL of its own: the gateway streams it

    async def aclose(self) -> None:
        return None
