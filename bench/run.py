"""Side-by-side benchmark: the gateway vs LiteLLM's proxy vs the upstream called directly.

Starts a fast fake upstream, the gateway (SQLite, default job settings) and LiteLLM's proxy
(in its own virtualenv, created on first use) on loopback, drives them with wrk and with a
Python client for latency and streaming, and writes bench/RESULTS.md.

    python bench/run.py                 # everything
    python bench/run.py --no-litellm    # gateway vs direct only
    python bench/run.py --quick         # shorter runs, smaller downloads
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))

from tests.support.servers import free_port, stop, wait_http  # noqa: E402

ADMIN = "bench-admin-token"
LITELLM_VERSION = "1.102.4"
LITELLM_KEY = "sk-bench-master"
MIB = 1024 * 1024


# -- processes -------------------------------------------------------------------------------
def spawn(args: list[str], health: str, log: Path, env: dict[str, str] | None = None,
          cwd: Path | None = None, timeout: float = 120) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd,
                                   env={**os.environ, **(env or {})})
    wait_http(health, process, timeout=timeout)
    return process


def fake_upstream(workdir: Path, *, content_mib: float = 64,
                  poll_delay_ms: float = 0) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    process = spawn([sys.executable, str(HERE / "fake_upstream.py"), "--port", str(port),
                     "--content-mib", str(content_mib), "--poll-delay-ms", str(poll_delay_ms)],
                    f"http://127.0.0.1:{port}/_stats", workdir / f"fake-{port}.log")
    return f"http://127.0.0.1:{port}", process


def gateway(workdir: Path, upstreams: list[str], *, workers: int = 1, db: str | None = None,
            database_url: str | None = None, extra: dict[str, Any] | None = None,
            **jobs: Any) -> tuple[str, subprocess.Popen[bytes]]:
    """A gateway on SQLite (``db`` names the file) or on ``database_url``; ``extra`` adds
    top-level settings (``webhooks:``, say), ``jobs`` the job settings."""
    port = free_port()
    config = {
        "admin_token": ADMIN,
        "database_url": database_url
        or f"sqlite+aiosqlite:///{workdir}/{db or f'gateway-{port}.db'}",
        "log_level": "WARNING", "max_upload_mb": 20,
        "archive": {"dir": str(workdir / f"archive-{port}")},
        "jobs": {"poll_interval_s": 10, "refresh_after_s": 2, **jobs},
        "groups": {"official": {"billing_modes": ["per_second"]}},
        "upstreams": [{"name": f"up{i}", "base_url": f"{url}/v1", "api_key": "sk-fake",
                       "groups": ["official"], "models": ["sora-2"], "timeout_s": 120}
                      for i, url in enumerate(upstreams)],
        "pricing": {"per_second": {"sora-2": {"720x1280": "0.10"}}},
        **(extra or {}),
    }
    path = workdir / f"gateway-{port}.yaml"
    path.write_text(yaml.safe_dump(config))
    process = spawn([sys.executable, "-m", "gateway.cli", "serve", "--config", str(path),
                     "--port", str(port), "--workers", str(workers)],
                    f"http://127.0.0.1:{port}/healthz",
                    workdir / f"gateway-{port}.log", cwd=workdir, env=this_checkout())
    return f"http://127.0.0.1:{port}", process


def this_checkout() -> dict[str, str]:
    """The environment that makes a subprocess import this checkout's gateway package, not
    whichever one is installed."""
    path = os.environ.get("PYTHONPATH")
    return {"PYTHONPATH": f"{ROOT}{os.pathsep}{path}" if path else str(ROOT)}


def litellm_python() -> Path:
    venv = HERE / ".venv-litellm"
    python = venv / "bin" / "python"
    if not (venv / "bin" / "litellm").exists():
        print(f"creating {venv} with litellm[proxy]=={LITELLM_VERSION} ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q",
                        f"litellm[proxy]=={LITELLM_VERSION}"], check=True)
    return venv / "bin" / "litellm"


def litellm(workdir: Path, upstream: str) -> tuple[str, subprocess.Popen[bytes]]:
    port = free_port()
    config = {
        "model_list": [{"model_name": "sora-2", "litellm_params": {
            "model": "openai/sora-2", "api_base": f"{upstream}/v1", "api_key": "sk-fake"}}],
        "general_settings": {"master_key": LITELLM_KEY},
        "litellm_settings": {"telemetry": False},
    }
    path = workdir / "litellm.yaml"
    path.write_text(yaml.safe_dump(config))
    process = spawn([str(litellm_python()), "--config", str(path), "--port", str(port),
                     "--num_workers", "1"], f"http://127.0.0.1:{port}/health/liveliness",
                    workdir / "litellm.log", cwd=workdir, timeout=180)
    return f"http://127.0.0.1:{port}", process


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- targets ---------------------------------------------------------------------------------
class Target:
    def __init__(self, name: str, url: str, key: str, pid: int | None) -> None:
        self.name, self.url, self.key, self.pid = name, url, key, pid
        self.headers = {"Authorization": f"Bearer {key}"}

    def create(self, prompt: str = "bench") -> str:
        response = httpx.post(f"{self.url}/v1/videos", headers=self.headers, timeout=60,
                              files={"prompt": (None, prompt), "model": (None, "sora-2"),
                                     "seconds": (None, "4"), "size": (None, "720x1280")})
        response.raise_for_status()
        return str(response.json()["id"])


# -- measurements ----------------------------------------------------------------------------
WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")
WRK_PCT = re.compile(r"^\s+(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
UNIT = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def wrk(url: str, headers: dict[str, str], connections: int, seconds: float,
        script: Path | None = None) -> dict[str, float]:
    args = ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "30s"]
    for name, value in headers.items():
        args += ["-H", f"{name}: {value}"]
    if script is not None:
        args += ["-s", str(script)]
    out = subprocess.run([*args, url], capture_output=True, text=True, check=True).stdout
    result = {"rps": float(WRK_RPS.search(out).group(1))}  # type: ignore[union-attr]
    for pct, value, unit in WRK_PCT.findall(out):
        result[f"p{pct}_ms"] = float(value) * UNIT[unit]
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    result["errors"] = float(errors.group(1)) if errors else 0.0
    return result


def serial_p50_ms(call: Callable[[httpx.Client], None], n: int) -> float:
    with httpx.Client(timeout=60) as client:
        for _ in range(10):
            call(client)
        samples = []
        for _ in range(n):
            started = time.perf_counter()
            call(client)
            samples.append((time.perf_counter() - started) * 1000)
    return statistics.median(samples)


def download(url: str, headers: dict[str, str]) -> dict[str, float]:
    started = time.perf_counter()
    first = None
    total = 0
    with httpx.stream("GET", url, headers=headers, timeout=600) as response:
        response.raise_for_status()
        for chunk in response.iter_raw(1024 * 1024):
            if first is None:
                first = time.perf_counter() - started
            total += len(chunk)
    elapsed = time.perf_counter() - started
    return {"ttfb_ms": (first or elapsed) * 1000, "mib_s": total / MIB / elapsed,
            "bytes": total}


@contextlib.contextmanager
def peak_rss(pid: int | None) -> Iterator[dict[str, float]]:
    result = {"base": rss_mib(pid) if pid else 0.0, "peak": 0.0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            result["peak"] = max(result["peak"], rss_mib(pid) if pid else 0.0)
            time.sleep(0.02)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        done.set()
        thread.join()
        result["growth"] = max(0.0, result["peak"] - result["base"])


def multipart_script(workdir: Path, image: bytes | None) -> Path:
    """A wrk script that posts the multipart body the openai SDK sends for a create."""
    boundary = "benchboundary7MA4YWxkTrZu0gW"
    parts = []
    for name, value in (("prompt", "bench"), ("model", "sora-2"), ("seconds", "4"),
                        ("size", "720x1280")):
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"'
                     f"\r\n\r\n{value}\r\n".encode())
    if image is not None:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="input_reference";'
                     f' filename="ref.jpg"\r\nContent-Type: image/jpeg\r\n\r\n'.encode()
                     + image + b"\r\n")
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    body_path = workdir / f"body-{len(body)}.bin"
    body_path.write_bytes(body)
    script = workdir / f"create-{len(body)}.lua"
    script.write_text(
        f'local f = io.open("{body_path}", "rb")\nwrk.body = f:read("*all")\nf:close()\n'
        f'wrk.method = "POST"\n'
        f'wrk.headers["Content-Type"] = "multipart/form-data; boundary={boundary}"\n')
    return script


def reference_image() -> bytes:
    """A 720x1280 JPEG of about 1 MiB (noise compresses badly, so quality sets the size)."""
    import io

    from PIL import Image

    image = Image.effect_noise((720, 1280), 64).convert("RGB")
    best = b""
    for quality in (95, 90, 85, 80, 75, 70, 60, 50):
        out = io.BytesIO()
        image.save(out, "JPEG", quality=quality)
        best = out.getvalue()
        if len(best) <= MIB:
            break
    return best


# -- scenarios -------------------------------------------------------------------------------
def setup_gateway_token(url: str) -> str:
    response = httpx.post(f"{url}/admin/tokens", headers={"Authorization": f"Bearer {ADMIN}"},
                          json={"name": "bench", "group": "official",
                                "balance_usd": "100000000"}, timeout=30)
    response.raise_for_status()
    return str(response.json()["token"])


def bench_polls(targets: list[Target], seconds: float) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for target in targets:
        video = target.create()
        url = f"{target.url}/v1/videos/{video}"

        def get(client: httpx.Client, url: str = url, t: Target = target) -> None:
            client.get(url, headers=t.headers).raise_for_status()

        results[target.name] = {"serial_p50_ms": serial_p50_ms(get, 300)}
        for connections in (20, 100):
            results[target.name][f"c{connections}"] = wrk(url, target.headers, connections,
                                                          seconds)
    return results


def bench_creates(targets: list[Target], workdir: Path, seconds: float,
                  fresh_gateway: Callable[[], tuple[Target, subprocess.Popen[bytes]]],
                  ) -> dict[str, Any]:
    """Creates without and with an image, each phase on a gateway of its own.

    The fake upstream never finishes these jobs and the gateway keeps polling what it started,
    so a gateway that had served the first phase would carry thousands of unfinished jobs into
    the second; the peer keeps no such backlog.
    """
    image = reference_image()
    results: dict[str, Any] = {}
    for label, payload in (("no_image", None), ("image_1mib", image)):
        fresh, process = fresh_gateway()
        try:
            phase = [fresh if target.name == "gateway" else target for target in targets]
            _create_phase(phase, workdir, seconds, label, payload, results)
        finally:
            stop(process)
    return results


def _create_phase(targets: list[Target], workdir: Path, seconds: float, label: str,
                  payload: bytes | None, results: dict[str, Any]) -> None:
    script = multipart_script(workdir, payload)
    files: dict[str, Any] = {"prompt": (None, "bench"), "model": (None, "sora-2"),
                             "seconds": (None, "4"), "size": (None, "720x1280")}
    if payload is not None:
        files["input_reference"] = ("ref.jpg", payload, "image/jpeg")
    for target in targets:

        def post(client: httpx.Client, t: Target = target,
                 files: dict[str, Any] = files) -> None:
            client.post(f"{t.url}/v1/videos", headers=t.headers,
                        files=files).raise_for_status()

        row = results.setdefault(target.name, {})
        row[label] = {"serial_p50_ms": serial_p50_ms(post, 100),
                      "c10": wrk(f"{target.url}/v1/videos", target.headers, 10, seconds,
                                 script)}


def bench_content(targets: list[Target], size_mib: int) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for target in targets:
        video = target.create(f"bench bytes={size_mib * MIB}")
        if target.name != "direct":  # let the proxy learn that the job completed
            deadline = time.time() + 30
            while httpx.get(f"{target.url}/v1/videos/{video}", headers=target.headers,
                            timeout=30).json().get("status") != "completed":
                if time.time() > deadline:
                    raise RuntimeError(f"{target.name}: job never completed")
                time.sleep(0.5)
        with peak_rss(target.pid) as memory:
            result = download(f"{target.url}/v1/videos/{video}/content", target.headers)
        results[target.name] = {**result, "rss_growth_mib": memory["growth"]}
    return results


def bench_content_memory(target: Target, big_mib: int, parallel: int,
                         each_mib: int) -> dict[str, float]:
    def ready(prompt: str) -> str:
        video = target.create(prompt)
        while httpx.get(f"{target.url}/v1/videos/{video}", headers=target.headers,
                        timeout=30).json().get("status") != "completed":
            time.sleep(0.5)
        return video

    big = ready(f"bench bytes={big_mib * MIB}")
    with peak_rss(target.pid) as one:
        download(f"{target.url}/v1/videos/{big}/content", target.headers)
    videos = [ready(f"bench bytes={each_mib * MIB}") for _ in range(parallel)]
    with peak_rss(target.pid) as many, ThreadPoolExecutor(parallel) as pool:
        list(pool.map(lambda v: download(f"{target.url}/v1/videos/{v}/content",
                                         target.headers), videos))
    return {"one_big_growth_mib": one["growth"], "parallel_growth_mib": many["growth"]}


def bench_upstream_load(target: Target, upstream: str, seconds: float) -> dict[str, float]:
    video = target.create()
    before = httpx.get(f"{upstream}/_stats").json()["retrieves"]
    wrk(f"{target.url}/v1/videos/{video}", target.headers, 100, seconds)
    after = httpx.get(f"{upstream}/_stats").json()["retrieves"]
    upstream_ids = set(after) - set(before) or set(after)
    calls = max(after.get(uid, 0) - before.get(uid, 0) for uid in upstream_ids)
    return {"clients": 100, "seconds": seconds, "upstream_retrieves": calls,
            "bound": seconds / 2 + seconds / 10 + 2}


def bench_reconciler(workdir: Path, jobs: int, cap: int) -> dict[str, float]:
    """N unfinished jobs across 3 upstreams, each polled once, per-upstream cap honoured."""
    fakes = [fake_upstream(workdir, poll_delay_ms=20) for _ in range(3)]
    url, process = gateway(workdir, [u for u, _ in fakes], poll_interval_s=3600,
                           poll_concurrency=cap)
    try:
        db = next(workdir.glob(f"gateway-{url.rsplit(':', 1)[1]}.db"))
        setup_gateway_token(url)
        with sqlite3.connect(db) as conn:
            token_id = conn.execute("SELECT id FROM tokens").fetchone()[0]
            old = time.time() - 7200 + 600  # due for polling, younger than max_age
            conn.executemany(
                "INSERT INTO jobs (id, token_id, \"group\", billing_mode, kind, model, size,"
                " seconds, prompt, price_micros, status, progress, upstream, upstream_key_index,"
                " upstream_id, created_at, updated_at, polled_at) VALUES"
                " (?, ?, 'official', 'per_second', 'create', 'sora-2', '720x1280', 4, 'bench',"
                " 0, 'in_progress', 0, ?, 0, ?, ?, ?, ?)",
                [(f"video_bench{i:06d}", token_id, f"up{i % 3}", f"video_b{i}", old, old, 0.0)
                 for i in range(jobs)])
        started = time.time()
        # Jobs were inserted with polled_at=0: the running reconciler picks them up now. A
        # job counts once its poll is both answered upstream and recorded in the database.
        while True:
            with sqlite3.connect(db) as conn:
                recorded = conn.execute("SELECT count(*) FROM jobs WHERE polled_at > 0"
                                        " AND lease_owner IS NULL").fetchone()[0]
            totals = [httpx.get(f"{u}/_stats").json() for u, _ in fakes]
            if recorded >= jobs or time.time() - started > 300:
                break
            time.sleep(0.2)
        elapsed = time.time() - started
        return {"jobs": jobs, "seconds_to_poll_all": elapsed, "recorded": recorded,
                "polled": sum(t["total"] for t in totals), "cap": cap,
                "max_in_flight_per_upstream": max(t["max_in_flight"] for t in totals)}
    finally:
        stop(process)
        for _, fake in fakes:
            stop(fake)


# -- report ----------------------------------------------------------------------------------
def machine() -> str:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return (f"{os.cpu_count()} vCPU ({cpu}), Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")


def fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def checks(results: dict[str, Any]) -> list[tuple[str, str, bool]]:
    """Each target of the benchmark brief: (target, what this run measured, met)."""
    polls, creates, content = results["polls"], results["creates"], results["content"]
    gw, direct = polls["gateway"], polls["direct"]
    rows: list[tuple[str, str, bool]] = []
    for c in ("c20", "c100"):
        share = gw[c]["rps"] / direct[c]["rps"]
        rows.append((f"polls at {c[1:]} clients >= 50 % of direct req/s", f"{share:.0%}",
                     share >= 0.5))
    added = gw["serial_p50_ms"] - direct["serial_p50_ms"]
    rows.append(("poll p50 added over direct, serial <= 0.3 ms", f"{added:.2f} ms",
                 added <= 0.3))
    for c in ("c20", "c100"):
        ratio = gw[c]["p99_ms"] / gw[c]["p50_ms"]
        rows.append((f"poll p99 within 5x p50 at {c[1:]} clients", f"{ratio:.1f}x", ratio <= 5))
    for label, name in (("no_image", "create"), ("image_1mib", "create with a 1 MiB image")):
        added = (creates["gateway"][label]["serial_p50_ms"]
                 - creates["direct"][label]["serial_p50_ms"])
        rows.append((f"{name}: p50 added over direct <= 2.5 ms", f"{added:.2f} ms",
                     added <= 2.5))
        if "litellm" in creates:  # LiteLLM writes nothing per create: 2x, not the old 5x
            ratio = (creates["gateway"][label]["c10"]["rps"]
                     / creates["litellm"][label]["c10"]["rps"])
            rows.append((f"{name}: >= 2x LiteLLM req/s", f"{ratio:.1f}x", ratio >= 2))
    late = content["gateway"]["ttfb_ms"] - content["direct"]["ttfb_ms"]
    rows.append(("content first byte within 10 ms of direct", f"{late:+.1f} ms", late <= 10))
    share = content["gateway"]["mib_s"] / content["direct"]["mib_s"]
    rows.append(("content throughput >= 80 % of direct", f"{share:.0%}", share >= 0.8))
    memory = results["content_memory"]
    rows.append((f"RSS growth, one {memory['big_mib']} MiB stream < 32 MiB",
                 f"{memory['one_big_growth_mib']:.1f} MiB", memory["one_big_growth_mib"] < 32))
    rows.append((f"RSS growth, {memory['parallel']} x {memory['each_mib']} MiB streams < 64 MiB",
                 f"{memory['parallel_growth_mib']:.1f} MiB", memory["parallel_growth_mib"] < 64))
    load = results["upstream_load"]
    rows.append(("upstream retrieves for 100 pollers <= bound",
                 f"{int(load['upstream_retrieves'])} (bound {load['bound']:.0f})",
                 load["upstream_retrieves"] <= load["bound"]))
    rec = results["reconciler"]
    rows.append((f"{rec['jobs']:,} jobs each polled and recorded within 30 s, cap honoured",
                 f"{rec['seconds_to_poll_all']:.1f} s, max {int(rec['max_in_flight_per_upstream'])}"
                 f" in flight (cap {rec['cap']})",
                 rec["seconds_to_poll_all"] <= 30 and rec["recorded"] >= rec["jobs"]
                 and rec["max_in_flight_per_upstream"] <= rec["cap"]))
    for key, module in scenarios():
        if key in results:
            rows += module.checks(results[key])
    return rows


def scenarios() -> list[tuple[str, Any]]:
    """The scenarios kept in modules of their own (each also runnable alone): the key of
    their results and the module, whose ``checks`` and ``lines`` report them."""
    import chat_waiters
    import reconciler_volume
    import scaleout
    import webhook_volume

    return [("scaleout", scaleout), ("reconciler_volume", reconciler_volume),
            ("webhooks", webhook_volume), ("chat_waiters", chat_waiters)]


def report(results: dict[str, Any]) -> str:
    names = [n for n in ("direct", "gateway", "litellm") if n in results["polls"]]
    poll_names = [*names, *(n for n in results["polls"] if n not in names)]
    lines = [f"# Benchmark results\n\n{results['date']} on {results['machine']}; "
             f"wrk 2 threads, all processes on one machine over loopback.\n",
             "## Polls (`GET /v1/videos/{id}` of a running job)\n",
             "| target | serial p50 ms | c20 req/s | c20 p50 / p99 ms | c100 req/s | "
             "c100 p50 / p99 ms |", "|---|---|---|---|---|---|"]
    for name in poll_names:
        row = results["polls"][name]
        lines.append(f"| {name} | {fmt(row['serial_p50_ms'], 2)} | {fmt(row['c20']['rps'])} | "
                     f"{fmt(row['c20'].get('p50_ms', 0), 2)} / "
                     f"{fmt(row['c20'].get('p99_ms', 0), 2)} | {fmt(row['c100']['rps'])} | "
                     f"{fmt(row['c100'].get('p50_ms', 0), 2)} / "
                     f"{fmt(row['c100'].get('p99_ms', 0), 2)} |")
    lines += ["", "## Creates (multipart, as the SDK sends them)\n",
              "| target | serial p50 ms | c10 req/s | serial p50 ms, 1 MiB image | "
              "c10 req/s, 1 MiB image |", "|---|---|---|---|---|"]
    for name in names:
        row = results["creates"][name]
        lines.append(f"| {name} | {fmt(row['no_image']['serial_p50_ms'], 2)} | "
                     f"{fmt(row['no_image']['c10']['rps'])} | "
                     f"{fmt(row['image_1mib']['serial_p50_ms'], 2)} | "
                     f"{fmt(row['image_1mib']['c10']['rps'])} |")
    size = results["content_mib"]
    lines += ["", f"## Content ({size} MiB video)\n",
              "| target | first byte ms | MiB/s | RSS growth MiB |", "|---|---|---|---|"]
    for name in names:
        row = results["content"][name]
        lines.append(f"| {name} | {fmt(row['ttfb_ms'], 1)} | {fmt(row['mib_s'])} | "
                     f"{fmt(row['rss_growth_mib'])} |")
    memory = results["content_memory"]
    lines += ["", "## Gateway memory while streaming\n",
              f"- one {memory['big_mib']} MiB video: RSS grew {fmt(memory['one_big_growth_mib'])}"
              " MiB",
              f"- {memory['parallel']} concurrent {memory['each_mib']} MiB videos: RSS grew "
              f"{fmt(memory['parallel_growth_mib'])} MiB",
              "", "## Upstream load\n"]
    load = results["upstream_load"]
    lines += [f"- {load['clients']} clients polling one job for {load['seconds']} s through the "
              f"gateway: {int(load['upstream_retrieves'])} upstream retrieves of it (bound: "
              f"duration / refresh_after_s + reconciler polls + slack = {fmt(load['bound'])})"]
    rec = results["reconciler"]
    lines += ["", "## Reconciler\n",
              f"- {rec['jobs']:,} unfinished jobs across 3 upstreams (20 ms per upstream poll): "
              f"all polled and recorded in {fmt(rec['seconds_to_poll_all'])} s "
              f"({int(rec['recorded']):,} recorded, {int(rec['polled']):,} upstream polls); "
              f"at most {int(rec['max_in_flight_per_upstream'])} in flight per upstream "
              f"(cap {rec['cap']})"]
    for key, module in scenarios():
        if key in results:
            lines += ["", *module.lines(results[key])]
    lines += ["", "## Targets\n", "| target | this run | met |", "|---|---|---|"]
    lines += [f"| {target} | {measured} | {'yes' if met else '**no**'} |"
              for target, measured, met in checks(results)]
    lines += ["", "Regenerate with `python bench/run.py`; raw numbers are in "
              "`bench/results/latest.json`.", ""]
    return "\n".join(lines)


def run_scenarios(results: dict[str, Any], workdir: Path, quick: bool) -> None:
    import chat_waiters
    import reconciler_volume
    import scaleout
    import webhook_volume

    print("scale-out on PostgreSQL ...", flush=True)
    results["scaleout"] = scaleout.bench_scaleout(workdir, 3 if quick else 10)
    print("reconciler at volume ...", flush=True)
    results["reconciler_volume"] = reconciler_volume.bench_reconciler_volume(
        workdir, 10_000 if quick else 100_000)
    print("webhooks at volume ...", flush=True)
    results["webhooks"] = webhook_volume.bench_webhook_volume(
        workdir, 2_000 if quick else 10_000, webhook_volume.RATE, 5 if quick else 15)
    print("chat waiters at volume ...", flush=True)
    results["chat_waiters"] = chat_waiters.bench_chat_waiters(
        workdir, *chat_waiters.SIZES[quick])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--no-litellm", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    seconds = 3 if args.quick else 10
    content_mib, big_mib, each_mib = (16, 128, 20) if args.quick else (64, 1024, 100)
    workdir = Path(tempfile.mkdtemp(prefix="gateway-bench-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        upstream, fake = fake_upstream(workdir)
        processes.append(fake)
        gw_url, gw = gateway(workdir, [upstream])
        processes.append(gw)
        targets = [Target("direct", upstream, "sk-fake", fake.pid),
                   Target("gateway", gw_url, setup_gateway_token(gw_url), gw.pid)]
        if not args.no_litellm:
            ll_url, ll = litellm(workdir, upstream)
            processes.append(ll)
            targets.append(Target("litellm", ll_url, LITELLM_KEY, ll.pid))
        results: dict[str, Any] = {
            "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(),
            "content_mib": content_mib,
        }
        print("polls ...", flush=True)
        results["polls"] = bench_polls(targets, seconds)
        # The same gateway and database served by two worker processes (polls only). It runs
        # for its own rows alone: beside the others, its reconciler would lease, poll and write
        # the very job the single process's rows measure, in the same database file.
        multi_url, multi = gateway(workdir, [upstream], workers=2,
                                   db=f"gateway-{gw_url.rsplit(':', 1)[1]}.db")
        try:
            multi_target = Target("gateway, 2 workers", multi_url, targets[1].key, multi.pid)
            results["polls"].update(bench_polls([multi_target], seconds))
        finally:
            stop(multi)
        # Content before creates: the fake upstream never finishes the jobs creates start, so
        # afterwards the gateway keeps thousands of them polled, which the peer never does.
        print("content ...", flush=True)
        results["content"] = bench_content(targets, content_mib)
        print("content memory ...", flush=True)
        results["content_memory"] = {
            **bench_content_memory(targets[1], big_mib, 20, each_mib),
            "big_mib": big_mib, "parallel": 20, "each_mib": each_mib}
        print("creates ...", flush=True)
        def fresh_gateway() -> tuple[Target, subprocess.Popen[bytes]]:
            url, process = gateway(workdir, [upstream])
            return Target("gateway", url, setup_gateway_token(url), process.pid), process

        results["creates"] = bench_creates(targets, workdir, seconds, fresh_gateway)
        print("upstream load ...", flush=True)
        results["upstream_load"] = bench_upstream_load(targets[1], upstream, seconds)
        print("reconciler ...", flush=True)
        results["reconciler"] = bench_reconciler(workdir, 2000 if args.quick else 10_000, 16)
        run_scenarios(results, workdir, args.quick)
    finally:
        for process in processes:
            stop(process)
    (HERE / "results").mkdir(exist_ok=True)
    (HERE / "results" / "latest.json").write_text(json.dumps(results, indent=2))
    text = report(results)
    (HERE / "RESULTS.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
