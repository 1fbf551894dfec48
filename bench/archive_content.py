"""Content served from the archive, against the same object fetched from the S3 server
directly: first byte and throughput, and the gateway's memory while it archives the video.

One fake upstream (bench/fake_upstream.py), one S3-compatible server (Ceph's RADOS Gateway,
as the tests run it, or ``GATEWAY_TEST_S3_URL``), and two gateways: one archiving to a local
directory, one to the S3 bucket. Each is given a finished video of ``--size-mib``; the
gateway's RSS is sampled while it archives it, then the video is downloaded from the gateway
(served from its archive) and, as the baseline, straight from the bucket with a presigned URL.

    python bench/archive_content.py                 # 256 MiB
    python bench/archive_content.py --size-mib 1024 # the 1 GiB memory check
    python bench/archive_content.py --quick         # 64 MiB
    python bench/archive_content.py --rounds 9      # more downloads of each (default 5)

The downloads go in rounds (direct, local, S3, in a rotating order), and each ratio is the
median of the rounds' own ratios: on a shared machine one download of each is mostly noise.
The first byte is also measured as the median of 20 ranged reads of the first MiB of each,
interleaved, on kept-alive connections.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from bench.run import (  # noqa: E402
    ADMIN,
    MIB,
    Target,
    download,
    fake_upstream,
    gateway,
    peak_rss,
    setup_gateway_token,
    stop,
)
from tests.support.s3 import S3Server, running_s3_server  # noqa: E402


def _archived(target: Target, video_id: str, timeout: float = 600) -> None:
    """Wait until the gateway says the video is stored in its archive."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = httpx.get(f"{target.url}/admin/videos/{video_id}", timeout=30,
                          headers={"Authorization": f"Bearer {ADMIN}"}).json()
        if state.get("archive_state") == "stored":
            return
        if state.get("archive_state") == "failed":
            raise RuntimeError(f"{video_id} could not be archived")
        time.sleep(0.2)
    raise RuntimeError(f"{video_id} was not archived in {timeout}s")


def _direct_url(server: S3Server, prefix: str, video_id: str) -> str:
    client = server.client()
    try:
        listed = client.list_objects_v2(Bucket=server.bucket, Prefix=f"{prefix}{video_id}/")
        key = next(item["Key"] for item in listed["Contents"] if "/video." in item["Key"])
        return str(client.generate_presigned_url(
            "get_object", Params={"Bucket": server.bucket, "Key": key}, ExpiresIn=3600))
    finally:
        client.close()


def _archive(target: Target, size_mib: int) -> tuple[str, float]:
    """Archive one finished video, RSS sampled meanwhile: its id and the RSS growth.

    A small video goes first: the S3 client's first use loads its service models (tens of
    MiB, once per process), which is not what archiving a video costs."""
    _archived(target, target.create(f"bench bytes={MIB}"))
    with peak_rss(target.pid) as rss:
        video = target.create(f"bench bytes={size_mib * MIB}")
        _archived(target, video)
    return video, rss["growth"]


def _rounds(urls: dict[str, tuple[str, dict[str, str]]], size_mib: int,
            rounds: int) -> dict[str, list[dict[str, float]]]:
    """Every URL downloaded ``rounds`` times, the order rotated so none always goes first."""
    names = list(urls)
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in urls}
    for index in range(rounds):
        for name in names[index % len(names):] + names[:index % len(names)]:
            url, headers = urls[name]
            served = download(url, headers)
            assert served["bytes"] == size_mib * MIB, served
            samples[name].append(served)
    return samples


def _first_mib(urls: dict[str, tuple[str, dict[str, str]]], times: int = 20) -> dict[str, float]:
    """The median time to the first MiB (a ranged GET on a kept-alive connection), each.

    A whole download's first chunk also waits on a new connection and on how busy the
    machine is that instant; many small reads of each, interleaved, tell the paths apart."""
    taken: dict[str, list[float]] = {name: [] for name in urls}
    with httpx.Client(timeout=60) as client:
        for index in range(times):
            for name in list(urls)[index % len(urls):] + list(urls)[:index % len(urls)]:
                url, headers = urls[name]
                began = time.perf_counter()
                answer = client.get(url, headers={**headers, "Range": f"bytes=0-{MIB - 1}"})
                assert (answer.status_code, len(answer.content)) == (206, MIB), answer
                taken[name].append((time.perf_counter() - began) * 1000)
    return {name: statistics.median(values) for name, values in taken.items()}


def _summary(samples: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    direct = samples["direct"]
    summary: dict[str, Any] = {}
    for name, rows in samples.items():
        summary[name] = {"mib_s": statistics.median(row["mib_s"] for row in rows),
                         "ttfb_ms": statistics.median(row["ttfb_ms"] for row in rows),
                         "rounds": [(round(row["mib_s"]), round(row["ttfb_ms"], 1))
                                    for row in rows]}
        if name != "direct":
            summary[name]["throughput_vs_direct"] = statistics.median(
                row["mib_s"] / base["mib_s"] for row, base in zip(rows, direct, strict=True))
            summary[name]["first_byte_vs_direct_ms"] = statistics.median(
                row["ttfb_ms"] - base["ttfb_ms"] for row, base in zip(rows, direct, strict=True))
    return summary


def run(size_mib: int, rounds: int = 5) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-archive-"))
    processes = []
    growth: dict[str, float] = {}
    urls: dict[str, tuple[str, dict[str, str]]] = {}
    with running_s3_server() as server:
        try:
            upstream, fake = fake_upstream(workdir, content_mib=size_mib)
            processes.append(fake)
            s3 = {"backend": "s3", "s3": server.config(prefix="bench").model_dump()}
            for name, archive in (("local", {"dir": str(workdir / "archive")}), ("s3", s3)):
                url, process = gateway(workdir, [upstream], extra={"archive": archive})
                processes.append(process)
                target = Target(name, url, setup_gateway_token(url), process.pid)
                video, growth[name] = _archive(target, size_mib)
                urls[name] = (f"{target.url}/v1/videos/{video}/content", target.headers)
                if name == "s3":
                    urls["direct"] = (_direct_url(server, "bench/", video), {})
            first = _first_mib(urls)
            results = _summary(_rounds(urls, size_mib, rounds))
        finally:
            for process in processes:
                stop(process)
    for name, value in growth.items():
        results[name]["archive_rss_growth_mib"] = value
    for name, value in first.items():
        results[name]["first_mib_ms"] = value
        results[name]["first_mib_vs_direct_ms"] = value - first["direct"]
    return {"size_mib": size_mib, **results}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    results = run(64 if args.quick else args.size_mib, args.rounds)
    print(json.dumps(results, indent=2))
    for name in ("local", "s3"):
        row = results[name]
        print(f"{name}: {row['mib_s']:.0f} MiB/s ({row['throughput_vs_direct']:.0%} of direct "
              f"S3), first byte {row['first_byte_vs_direct_ms']:+.1f} ms vs direct (first MiB "
              f"{row['first_mib_vs_direct_ms']:+.1f} ms), RSS while archiving "
              f"+{row['archive_rss_growth_mib']:.1f} MiB")


if __name__ == "__main__":
    main()
