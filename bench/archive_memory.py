"""Memory and throughput of the S3 archive on a large video: not a test, a measurement.

Archives a generated stream (1 GiB by default, in 64 KiB chunks as an upstream download
arrives) to a real S3-compatible server through the archive's store, reads it back, and
prints this process's RSS growth over each phase (the target is under 32 MiB), the
throughput, and the longest the event loop went without running a 10 ms ticker (with the
loop thread's own CPU time over that gap: the rest is waiting for a core).

    python bench/archive_memory.py                  # starts its own server (radosgw)
    GATEWAY_TEST_S3_URL=http://AK:SK@127.0.0.1:7480 python bench/archive_memory.py
    python bench/archive_memory.py --size-mib 256 --gc-freeze
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import hashlib
import random
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from gateway.archive.config import ArchiveConfig, open_store  # noqa: E402
from gateway.archive.s3 import PART_SIZE  # noqa: E402
from gateway.archive.storage import BlobStore  # noqa: E402
from tests.support.s3 import running_s3_server  # noqa: E402

MiB = 1024 * 1024
CHUNK = 64 * 1024


def rss_bytes(field: str = "VmRSS") -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def reset_peak() -> None:
    """Start the kernel's peak-RSS counter (VmHWM) afresh from the current RSS."""
    Path("/proc/self/clear_refs").write_text("5")


class Watch:
    """The phase's peak RSS over its start, and the event loop's longest stall."""

    def __init__(self) -> None:
        self.longest_stall = self.stall_cpu = 0.0
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Watch:
        reset_peak()
        self.start_rss = rss_bytes()
        self._task = asyncio.create_task(self._tick())
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self._task is not None
        self._task.cancel()
        self.growth = rss_bytes("VmHWM") - self.start_rss

    async def _tick(self) -> None:
        # The loop thread's own CPU time over the longest gap tells work done on the loop
        # apart from the thread waiting for a core on a busy machine.
        last, last_cpu = time.perf_counter(), time.thread_time()
        while True:
            await asyncio.sleep(0.01)
            now, cpu = time.perf_counter(), time.thread_time()
            if now - last - 0.01 > self.longest_stall:
                self.longest_stall, self.stall_cpu = now - last - 0.01, cpu - last_cpu
            last, last_cpu = now, cpu


async def generated(size: int, digest: hashlib._Hash) -> AsyncIterator[bytes]:
    block = random.Random(1).randbytes(MiB)
    for offset in range(0, size, CHUNK):
        chunk = block[offset % MiB:offset % MiB + min(CHUNK, size - offset)]
        digest.update(chunk)
        yield chunk
        await asyncio.sleep(0)  # a download yields to the loop between chunks too


def report(phase: str, size: int, seconds: float, watch: Watch) -> None:
    verdict = "ok" if watch.growth < 32 * MiB else "OVER the 32 MiB target"
    print(f"{phase:>5}: {size / MiB:7.0f} MiB in {seconds:6.2f} s = {size / MiB / seconds:6.1f} "
          f"MiB/s; RSS growth {watch.growth / MiB:5.1f} MiB ({verdict}); "
          f"longest event-loop stall {watch.longest_stall * 1000:5.1f} ms "
          f"({watch.stall_cpu * 1000:.1f} ms of it on the loop's CPU)")


async def warm_up(store: BlobStore) -> None:
    """One small multipart round trip first, as a running gateway has made long before: the
    client's connection pool and botocore's service model are loaded once per process."""
    await store.put("bench/warm-up", generated(PART_SIZE + 1, hashlib.sha256()), "video/mp4")
    async with await store.open("bench/warm-up") as blob:
        await blob.read()
    await store.delete("bench/warm-up")


async def measure(store: BlobStore, size: int, freeze: bool) -> None:
    await warm_up(store)
    if freeze:  # what a process can do once started: the collector then skips what it loaded
        gc.freeze()
    expected = hashlib.sha256()
    async with Watch() as watch:
        began = time.perf_counter()
        stored = await store.put("bench/video", generated(size, expected), "video/mp4")
        seconds = time.perf_counter() - began
    report("put", size, seconds, watch)
    assert stored.size == size
    assert stored.sha256 == expected.hexdigest()

    read, seen = hashlib.sha256(), 0
    async with Watch() as watch:
        began = time.perf_counter()
        async with await store.open("bench/video") as blob:
            async for chunk in blob:
                read.update(chunk)
                seen += len(chunk)
        seconds = time.perf_counter() - began
    report("get", seen, seconds, watch)
    assert read.hexdigest() == stored.sha256, "the bytes read back differ"
    await store.delete("bench/video")


async def main_async(config: ArchiveConfig, size: int, freeze: bool) -> None:
    store = open_store(config)
    try:
        await measure(store, size, freeze)
    finally:
        await store.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mib", type=int, default=1024)
    parser.add_argument("--gc-freeze", action="store_true",
                        help="gc.freeze() after the warm-up, to tell the collector's pauses apart")
    args = parser.parse_args()
    with running_s3_server() as server:
        print(f"S3 server {server.endpoint_url}, bucket {server.bucket}; "
              f"RSS at start {rss_bytes() / MiB:.1f} MiB")
        config = ArchiveConfig(backend="s3", s3=server.config(prefix="bench"))
        asyncio.run(main_async(config, args.size_mib * MiB, args.gc_freeze))


if __name__ == "__main__":
    main()
