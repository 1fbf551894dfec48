"""Real processes for tests: the provider simulator and gateway servers on loopback ports."""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml
from openai import OpenAI

from gateway.simulators import BASE_PATHS

ADMIN_TOKEN = "admin-" + secrets.token_urlsafe(16)
SIM_KEY = "sk-sim-" + secrets.token_hex(8)

# Every SDK client a test gateway hands out. Each is closed when the test (or fixture) that
# made it ends: one left to the garbage collector can have its socket finalised before the
# client that would close it, and the suite treats the "unclosed socket" warning as an error
# in whichever later test the collection happens to run.
SDK_CLIENTS: list[OpenAI] = []


def close_sdk_clients(keep: int = 0) -> None:
    """Close the clients handed out after the first ``keep``."""
    while len(SDK_CLIENTS) > keep:
        SDK_CLIENTS.pop().close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, process: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"process exited with {process.returncode} before serving {url}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        time.sleep(0.05)
    raise RuntimeError(f"{url} did not come up in {timeout}s")


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class QuietHandler(BaseHTTPRequestHandler):
    """A keep-alive request handler that logs nothing to the test output."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        return


class ThreadedServer:
    """An http.server on a loopback port, served from a daemon thread of the test process."""

    def __init__(self, handler: type[BaseHTTPRequestHandler]) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@dataclass
class Simulator:
    flavor: str = "openai"
    duration_s: float = 1.0
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    api_key: str | None = None  # when set, the only key accepted (kling: ACCESS:SECRET)
    # What the vendor calls itself in its [fail-leaky] and [reject-leaky] error texts.
    name: str = "simvendor"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        return self.url + BASE_PATHS[self.flavor]

    def start(self) -> Simulator:
        return self.spawn().ready()

    def spawn(self) -> Simulator:
        """Launch the process without waiting, so several can boot at once."""
        keys = ["--api-key", self.api_key] if self.api_key else []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gateway.simulator", "--port", str(self.port),
             "--flavor", self.flavor, "--duration", str(self.duration_s), "--name", self.name,
             *keys],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        return self

    def ready(self) -> Simulator:
        assert self.process is not None
        wait_http(f"{self.url}/_sim/stats", self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def stats(self) -> dict[str, Any]:
        return httpx.get(f"{self.url}/_sim/stats").json()  # type: ignore[no-any-return]

    def job(self, upstream_id: str) -> dict[str, Any]:
        return self.stats()["jobs"][upstream_id]  # type: ignore[no-any-return]

    def job_for(self, prompt: str) -> tuple[str, dict[str, Any]]:
        """The one upstream job whose prompt contains ``prompt``: its id and summary."""
        found = [(job_id, job) for job_id, job in self.stats()["jobs"].items()
                 if prompt in str(job.get("prompt"))]
        assert len(found) == 1, f"{len(found)} upstream jobs have prompt {prompt!r}"
        return found[0]

    def faults(self, create_status: int | None, count: int = 1) -> None:
        httpx.post(f"{self.url}/_sim/faults",
                   json={"create_status": create_status, "count": count}).raise_for_status()

    def fail_retrieves(self, status: int | None) -> None:
        """Answer every retrieve with ``status`` (an upstream that cannot be asked); None
        ends it."""
        httpx.post(f"{self.url}/_sim/faults",
                   json={"retrieve_status": status}).raise_for_status()

    def finish(self, upstream_id: str, status: str) -> None:
        httpx.post(f"{self.url}/_sim/jobs/{upstream_id}/finish",
                   json={"status": status}).raise_for_status()


def upstream(name: str, sim: Simulator, groups: list[str], **extra: Any) -> dict[str, Any]:
    return {"name": name, "base_url": sim.base_url, "api_key": SIM_KEY, "flavor": sim.flavor,
            "groups": groups, "models": ["sora-2", "sora-2-pro"], "weight": 1,
            "timeout_s": 5, **extra}


def base_config(upstreams: list[dict[str, Any]], **overrides: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "admin_token": ADMIN_TOKEN,
        "max_upload_mb": 2,
        "log_level": "INFO",
        "jobs": {"poll_interval_s": 0.5, "refresh_after_s": 0.2, "max_age_s": 3600,
                 "lease_s": 5, "poll_after_ms": 100},
        "groups": {
            "official": {"billing_modes": ["per_second"], "multiplier": 1.0},
            "budget": {"billing_modes": ["per_second", "per_call"], "multiplier": 1.0},
            "resale": {"billing_modes": ["per_second", "per_call"], "multiplier": 1.5},
            "nobody": {"billing_modes": ["per_second"], "multiplier": 1.0},
            "restricted": {"billing_modes": ["per_second"], "models": ["sora-2"]},
        },
        "upstreams": upstreams,
        "pricing": {
            "per_second": {
                "sora-2": {"720x1280": "0.10", "1280x720": "0.10"},
                "sora-2-pro": {"720x1280": "0.30", "1280x720": "0.30", "1024x1792": "0.50",
                               "1792x1024": "0.50"},
            },
            "per_call": {"sora-2": "0.15", "sora-2-pro": "0.60"},
        },
    }
    config.update(overrides)
    return config


def fresh_postgres_url(server_url: str) -> str:
    """Create an empty database on the test PostgreSQL server and return its URL."""
    import asyncio

    import asyncpg

    name = "gw_test_" + secrets.token_hex(6)
    plain = server_url.replace("postgresql+asyncpg://", "postgresql://")

    async def create() -> None:
        conn = await asyncpg.connect(plain)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(create())
    root = server_url.rsplit("/", 1)[0]
    return f"{root}/{name}"


def database_url(workdir: Path) -> str:
    server = os.environ.get("GATEWAY_TEST_POSTGRES_URL")
    if server:
        return fresh_postgres_url(server)
    return f"sqlite+aiosqlite:///{workdir / 'gateway.db'}"


@dataclass
class Gateway:
    """A `gateway serve` process with its own config and database."""

    workdir: Path
    config: dict[str, Any]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    def __post_init__(self) -> None:
        self.config.setdefault("database_url", database_url(self.workdir))
        self.config_path = self.workdir / f"config-{self.port}.yaml"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, port: int | None = None) -> Gateway:
        if port is not None:
            self.port = port
        self.config_path.write_text(yaml.safe_dump(self.config))
        self.log_path = self.workdir / f"gateway-{self.port}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "gateway.cli", "serve", "--config", str(self.config_path),
                 "--port", str(self.port)],
                stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.workdir,
            )
        wait_http(f"{self.url}/healthz", self.process)
        return self

    def stop(self) -> None:
        if self.process is not None:
            stop(self.process)

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks, no chance to tidy anything."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run `gateway ...` on the same config and database as this gateway."""
        return subprocess.run([sys.executable, "-m", "gateway.cli", *args, "--config",
                               str(self.config_path)], capture_output=True, text=True,
                              timeout=60, cwd=self.workdir, check=False)

    def logs(self) -> str:
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    # -- admin helpers -----------------------------------------------------------------------
    def admin(self) -> httpx.Client:
        return httpx.Client(base_url=self.url,
                            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}, timeout=30)

    def create_token(self, **spec: Any) -> tuple[str, str]:
        """Issue a token; returns (token id, plaintext token)."""
        body = {"name": "test", "group": "official", "billing_mode": "per_second",
                "balance_usd": "10", **spec}
        with self.admin() as admin:
            response = admin.post("/admin/tokens", json=body)
        assert response.status_code == 201, response.text
        data = response.json()
        return data["id"], data["token"]

    def token(self, token_id: str) -> dict[str, Any]:
        with self.admin() as admin:
            response = admin.get(f"/admin/tokens/{token_id}")
        assert response.status_code == 200, response.text
        return response.json()  # type: ignore[no-any-return]

    def ledger(self, token_id: str) -> list[dict[str, Any]]:
        with self.admin() as admin:
            response = admin.get(f"/admin/tokens/{token_id}/ledger", params={"limit": 1000})
        assert response.status_code == 200, response.text
        return response.json()["data"]  # type: ignore[no-any-return]

    def metrics(self, token: str = ADMIN_TOKEN) -> str:
        """The Prometheus text of /metrics, read as a scraper given ``token`` reads it."""
        response = httpx.get(f"{self.url}/metrics", timeout=10,
                             headers={"Authorization": f"Bearer {token}"})
        assert response.status_code == 200, response.text
        return response.text

    def client(self, token: str, **kwargs: Any) -> OpenAI:
        kwargs.setdefault("max_retries", 0)
        kwargs.setdefault("timeout", 30)
        client = OpenAI(base_url=f"{self.url}/v1", api_key=token, **kwargs)
        SDK_CLIENTS.append(client)
        return client

    def assert_reconciles(self, token_id: str) -> dict[str, Decimal]:
        """top-ups = balance + held + captured, and each job settled at most once.

        The token and its ledger are two reads: they are taken again until no entry was
        written between them (a job may settle meanwhile)."""
        for _ in range(50):
            entries = self.ledger(token_id)
            token = self.token(token_id)
            if self.ledger(token_id) == entries:
                break
            time.sleep(0.1)
        totals: dict[str, Decimal] = {}
        settled: list[str] = []
        for entry in entries:
            totals[entry["kind"]] = totals.get(entry["kind"], Decimal(0)) + Decimal(
                entry["amount_usd"])
            if entry["settles"]:
                settled.append(entry["job_id"])
        assert len(settled) == len(set(settled)), f"a job was settled twice: {settled}"
        zero = Decimal(0)
        balance, held = Decimal(token["balance_usd"]), Decimal(token["held_usd"])
        assert totals.get("topup", zero) == balance + held + totals.get("capture", zero)
        holds = totals.get("hold", zero)
        unsettled = holds - sum((totals.get(k, zero) for k in ("capture", "refund", "release")),
                                zero)
        assert unsettled == held, (unsettled, held)
        with self.admin() as admin:  # and the gateway's own proof agrees
            report = admin.get("/admin/reconcile").json()
        row = next(t for t in report["tokens"] if t["token_id"] == token_id)
        assert row["ok"] is True, row
        return totals
