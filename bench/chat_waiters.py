"""Chat waiters at volume: streaming chat completions held open while their video jobs run.

One gateway process on SQLite, the project's simulator (``gateway simulate``) as its
upstream, default job settings (``refresh_after_s: 2``) and the event loop lag ticker on
(``metrics.loop_lag_interval_s: 0.01``). N streaming ``POST /v1/chat/completions`` (1,000;
200 with ``--quick``) are opened from one asyncio client (httpx streams, at most 32 creates
in flight at once) and read until ``[DONE]``. Two phases, each on a fresh gateway and
simulator:

- one waiter per job: N streams on N jobs (the target's phase);
- N/3 jobs with one waiter each, then N/3 jobs with three waiters each (each three share an
  Idempotency-Key, so the gateway hands them one job; the second and third start once the
  first has its answer): the same number of jobs, so only the waiters differ.

Reported: upstream polls per job (the simulator's retrieve counts; independent of the waiters
if the gateway follows each job once, however many wait on it) beside the polls a job's life
calls for (its time from create to end over ``refresh_after_s``), the gateway's RSS growth
while the streams are open (target < 128 MiB at 1,000), and the longest event loop stall its
ticker saw (target < 50 ms).

    python bench/chat_waiters.py [--quick] [--waiters N]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from run import ADMIN, gateway, rss_mib, setup_gateway_token, spawn, stop, this_checkout

from tests.support.servers import free_port

ALIAS = "sora_video2"
CHAT = {"aliases": {ALIAS: {"model": "sora-2", "size": "720x1280", "seconds": 4}}}
REFRESH_AFTER_S = 2.0
CREATES_IN_FLIGHT = 32
STALL_TARGET_S = 0.05
RSS_TARGET_MIB = 128
# (streams, job seconds) by --quick: jobs outlast the ramp of creates, so that every stream
# waits at once for a while.
SIZES = {False: (1_000, 60.0), True: (200, 20.0)}


@dataclass
class Stream:
    started: float = 0.0
    answered: float = 0.0  # the response's headers: the job was created
    done: float = 0.0
    chunks: int = 0
    video_id: str = ""
    ready: bool = False  # the final message linked the video
    done_sent: bool = False
    error: str = ""


@dataclass
class Sampler:
    """The gateway's RSS, sampled every 0.2 s on a thread while the streams are open."""

    pid: int
    peak: float = 0.0
    _stop: threading.Event = field(default_factory=threading.Event)

    def __enter__(self) -> Sampler:
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self.thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            self.peak = max(self.peak, rss_mib(self.pid))


def simulator(workdir: Path, duration_s: float) -> tuple[str, Any]:
    port = free_port()
    process = spawn([sys.executable, "-m", "gateway.cli", "simulate", "--port", str(port),
                     "--duration", str(duration_s)], f"http://127.0.0.1:{port}/_sim/stats",
                    workdir / f"simulator-{port}.log", env=this_checkout())
    return f"http://127.0.0.1:{port}", process


@contextmanager
def chat_gateway(workdir: Path, duration_s: float) -> Iterator[tuple[str, str, str, int]]:
    """(gateway URL, token, simulator URL, gateway pid) on a fresh pair."""
    sim_url, sim = simulator(workdir, duration_s)
    extra = {"chat": CHAT, "metrics": {"loop_lag_interval_s": 0.01},
             "server": {"max_connections": 10_000}}
    url, process = gateway(workdir, [sim_url], extra=extra, refresh_after_s=REFRESH_AFTER_S)
    try:
        yield url, setup_gateway_token(url), sim_url, process.pid
    finally:
        stop(process)
        stop(sim)


async def one_stream(client: httpx.AsyncClient, creates: asyncio.Semaphore, token: str,
                     prompt: str, key: str, streams: list[Stream],
                     after: asyncio.Event | None = None,
                     answered: asyncio.Event | None = None) -> None:
    """One streaming completion read to its end; started once ``after`` is set, if given
    (a job's first waiter has its answer), and setting ``answered`` when it has its own."""
    if after is not None:
        await after.wait()
    stream = Stream(started=time.time())
    streams.append(stream)
    body = {"model": ALIAS, "stream": True, "messages": [{"role": "user", "content": prompt}]}
    headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
    await creates.acquire()
    held = True
    try:
        async with client.stream("POST", "/v1/chat/completions", json=body,
                                 headers=headers) as response:
            stream.answered = time.time()
            creates.release()
            held = False
            if answered is not None:
                answered.set()
            stream.video_id = response.headers.get("x-video-id", "")
            if response.status_code != 200:
                stream.error = f"HTTP {response.status_code}: {(await response.aread())[:200]!r}"
                return
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    stream.chunks += 1
                    stream.ready = stream.ready or "Your video is ready" in line
                    stream.done_sent = line == "data: [DONE]"
    except httpx.HTTPError as exc:
        when = "after its answer" if stream.answered else "before its answer"
        stream.error = f"{type(exc).__name__} {when}: {exc}"
    finally:
        if held:
            creates.release()
        if answered is not None:
            answered.set()  # its followers try too, and are told what it was
        stream.done = time.time()


async def open_streams(url: str, token: str, waiters: int, per_job: int,
                       duration_s: float) -> tuple[list[Stream], dict[str, Any] | None]:
    """The streams, read to their ends, and the ticker's metrics over the window in which
    every one of them waited (all answered, none of their jobs over yet), if there was one."""
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    timeout = httpx.Timeout(30.0, read=None)
    creates = asyncio.Semaphore(CREATES_IN_FLIGHT)
    streams: list[Stream] = []
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=timeout) as client:
        run = uuid.uuid4().hex[:8]
        calls = []
        for job in range(waiters // per_job):
            prompt, key = f"chat waiter bench {run} {job}", f"chat-bench-{run}-{job}"
            # The others wait until the first has its job: before, the key is in use (409).
            first = asyncio.Event()
            calls.append(one_stream(client, creates, token, prompt, key, streams,
                                    answered=first))
            calls += [one_stream(client, creates, token, prompt, key, streams, after=first)
                      for _ in range(per_job - 1)]
        gathered = asyncio.gather(*calls)
        window = await waiting_window(streams, waiters, duration_s,
                                      lambda: asyncio.to_thread(loop_lag, url))
        await gathered
    return streams, window


async def waiting_window(streams: list[Stream], waiters: int, duration_s: float,
                         read: Callable[[], Awaitable[dict[str, Any]]]) -> dict[str, Any] | None:
    while sum(1 for s in streams if s.answered) < waiters:
        if any(s.done for s in streams):
            return None
        await asyncio.sleep(0.1)
    start, began = await read(), time.time()
    # The first job ends its upstream duration after the first create was answered.
    end = min(s.answered for s in streams) + duration_s - 1.0
    if end - time.time() < 1.0 or any(s.done for s in streams):
        return None
    await asyncio.sleep(end - time.time())
    if any(s.done for s in streams):
        return None
    stop = await read()
    stall, exact = longest_stall(start, stop)
    return {"seconds": time.time() - began, "loop_lag_max_s": stall, "loop_lag_exact": exact,
            "loop_ticks_over_target": over_target(start, stop)}


def metric(text: str, name: str) -> dict[str, float]:
    """Samples of one metric family by their label string ('' when unlabelled)."""
    found = {}
    for match in re.finditer(rf"^{re.escape(name)}(\{{[^}}]*\}})? (\S+)$", text, re.M):
        found[match.group(1) or ""] = float(match.group(2))
    return found


def loop_lag(url: str) -> dict[str, Any]:
    text = httpx.get(f"{url}/metrics", headers={"Authorization": f"Bearer {ADMIN}"},
                     timeout=60).text
    buckets = {float(label.split('"')[1]): count for label, count
               in metric(text, "gateway_event_loop_lag_seconds_bucket").items()}
    return {"max_s": metric(text, "gateway_event_loop_lag_max_seconds").get("", 0.0),
            "buckets": buckets}


def longest_stall(before: dict[str, Any], after: dict[str, Any]) -> tuple[float, bool]:
    """The longest lag between two reads of the ticker's metrics, and whether it is exact:
    the max gauge if it rose in between (it holds the longest since the process started),
    else the smallest histogram bound no tick between the reads went over."""
    if after["max_s"] > before["max_s"]:
        return after["max_s"], True
    total = after["buckets"][float("inf")] - before["buckets"].get(float("inf"), 0.0)
    for le in sorted(after["buckets"]):
        if after["buckets"][le] - before["buckets"].get(le, 0.0) >= total:
            return le, False
    return float("inf"), False


def over_target(before: dict[str, Any], after: dict[str, Any]) -> float:
    """Ticks between the two reads that were late by more than the target."""
    inf, le = float("inf"), STALL_TARGET_S
    return ((after["buckets"][inf] - after["buckets"][le])
            - (before["buckets"].get(inf, 0.0) - before["buckets"].get(le, 0.0)))


def warm_up(url: str, token: str) -> None:
    """One short job streamed to its end: a fresh process builds each route's request
    handling (FastAPI's dependants, pydantic's validators) on its first call, about 0.1 s
    of the event loop on a 2-core machine, once."""
    body = {"model": ALIAS, "stream": True,
            "messages": [{"role": "user", "content": "warm-up [duration:0.5]"}]}
    with httpx.stream("POST", f"{url}/v1/chat/completions", json=body, timeout=60,
                      headers={"Authorization": f"Bearer {token}"}) as response:
        response.raise_for_status()
        for _ in response.iter_lines():
            pass


def phase(workdir: Path, waiters: int, per_job: int, duration_s: float) -> dict[str, Any]:
    with chat_gateway(workdir, duration_s) as (url, token, sim_url, pid):
        warm_up(url, token)
        httpx.post(f"{sim_url}/_sim/reset", timeout=60).raise_for_status()
        before_rss = rss_mib(pid)
        before_lag = loop_lag(url)
        with Sampler(pid) as sampler:
            streams, window = asyncio.run(open_streams(url, token, waiters, per_job,
                                                       duration_s))
        after_lag = loop_lag(url)
        stats = httpx.get(f"{sim_url}/_sim/stats", timeout=60).json()
    stall, exact = longest_stall(before_lag, after_lag)
    jobs = {s.video_id for s in streams if s.video_id}
    polls = sum(stats["retrieves"].values())
    upstream_jobs = max(1, len(stats["jobs"]))
    finished = [s for s in streams if s.done_sent and not s.error]
    # A job's life as its waiters saw it: from its create's answer to the stream's end.
    lives = [s.done - s.answered for s in finished]
    return {
        "waiters": waiters, "per_job": per_job, "jobs": len(jobs),
        "upstream_jobs": len(stats["jobs"]), "job_seconds": duration_s,
        "finished": len(finished), "errors": sorted({s.error for s in streams if s.error})[:3],
        "ready": sum(s.ready for s in finished),
        "upstream_polls": polls, "polls_per_job": polls / upstream_jobs,
        "intervals_per_job": statistics.fmean(lives) / REFRESH_AFTER_S if lives else 0.0,
        "open_s": max((s.done for s in streams), default=0) - min(s.started for s in streams),
        "rss_growth_mib": max(0.0, sampler.peak - before_rss),
        "loop_lag_max_s": stall, "loop_lag_exact": exact,
        "loop_ticks": after_lag["buckets"][float("inf")] - before_lag["buckets"][float("inf")],
        "loop_ticks_over_target": over_target(before_lag, after_lag),
        "waiting": window,
    }


def bench_chat_waiters(workdir: Path, waiters: int, duration_s: float) -> dict[str, Any]:
    """The target's phase (``waiters`` jobs, one waiter each), then a third as many jobs with
    one waiter each and with three: the same jobs, so only the waiters differ."""
    third = max(1, waiters // 3)
    return {"phases": [phase(workdir, n, per_job, duration_s)
                       for n, per_job in ((waiters, 1), (third, 1), (3 * third, 3))]}


def stall_text(phase: dict[str, Any] | None) -> str:
    if phase is None:
        return "-"
    ms = f"{phase['loop_lag_max_s'] * 1000:.0f} ms"
    return ms if phase["loop_lag_exact"] else f"≤ {ms}"


def checks(result: dict[str, Any]) -> list[tuple[str, str, bool]]:
    phases = result["phases"]
    main, alone, shared = phases
    waiters, waiting = main["waiters"], main["waiting"]
    ratio = shared["polls_per_job"] / max(alone["polls_per_job"], 1e-9)
    all_done = all(p["finished"] == p["waiters"] == p["ready"] for p in phases)
    return [
        (f"{waiters:,} streaming chat waiters: upstream polls per job independent of waiters",
         f"{alone['polls_per_job']:.1f} with 1 waiter a job, {shared['polls_per_job']:.1f} "
         f"with 3 ({ratio:.2f}x); {main['polls_per_job']:.1f} at {waiters:,} jobs, whose "
         f"life calls for {main['intervals_per_job']:.1f}",
         all_done and 0.8 <= ratio <= 1.2
         and all(p["polls_per_job"] <= p["intervals_per_job"] + 1.5 for p in phases)),
        (f"{waiters:,} streaming chat waiters: gateway RSS growth < {RSS_TARGET_MIB} MiB",
         f"{main['rss_growth_mib']:.1f} MiB", main["rss_growth_mib"] < RSS_TARGET_MIB),
        (f"{waiters:,} streaming chat waiters: longest event loop stall < "
         f"{STALL_TARGET_S * 1000:.0f} ms",
         f"{stall_text(main)} over the whole run, creates and ends included "
         f"({main['loop_ticks_over_target']:.0f} of {main['loop_ticks']:,.0f} ticks over); "
         f"{stall_text(waiting)} while all {waiters:,} waited"
         + (f" ({waiting['seconds']:.0f} s)" if waiting else ""),
         main["loop_lag_max_s"] <= STALL_TARGET_S),
    ]


def lines(result: dict[str, Any]) -> list[str]:
    out = ["## Chat waiters at volume (one process, SQLite, `gateway simulate` upstream)\n",
           "| streams | waiters a job | jobs | finished (linked) | job life s | polls / job | "
           "life / refresh_after_s | RSS growth MiB | longest loop stall | while all waited |",
           "|---|---|---|---|---|---|---|---|---|---|"]
    for p in result["phases"]:
        life = p["intervals_per_job"] * REFRESH_AFTER_S
        out.append(f"| {p['waiters']:,} | {p['per_job']} | {p['jobs']:,} | "
                   f"{p['finished']:,} ({p['ready']:,}) | {life:.1f} | "
                   f"{p['polls_per_job']:.1f} | {p['intervals_per_job']:.1f} | "
                   f"{p['rss_growth_mib']:.1f} | {stall_text(p)} | "
                   f"{stall_text(p['waiting'])} |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--waiters", type=int, help="streams opened at once")
    args = parser.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-chat-"))
    waiters, seconds = SIZES[args.quick]
    result = bench_chat_waiters(workdir, args.waiters or waiters, seconds)
    print("\n".join(lines(result)))
    for p in result["phases"]:
        if p["errors"]:
            print(f"errors with {p['per_job']} a job: {p['errors']}")
    for target, measured, met in checks(result):
        print(f"{target}: {measured} ({'met' if met else 'MISSED'})")


if __name__ == "__main__":
    main()
