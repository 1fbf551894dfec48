"""The quick start as a newcomer runs it, with real `gateway` processes.

Every command finds the config the same way (``--config``, then ``GATEWAY_CONFIG``, then
``./config.yaml``), so a token issued from the command line lands in the group and database
the server uses; ``gateway serve --with-simulator`` starts the bundled simulator and stops it
when it stops, whatever stopped it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from gateway.config import config_path, load_settings
from tests.conftest import wait_for
from tests.support.servers import (
    SDK_CLIENTS,
    Simulator,
    base_config,
    database_url,
    free_port,
    stop,
    upstream,
    wait_http,
)


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    return {**env, **extra}


def gateway_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gateway.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd, env=_env(**env))


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")  # a zombie is dead, only not yet reaped
    return not (status.exists() and "\nState:\tZ" in status.read_text())


def _write_config(path: Path, group: str, workdir: Path, sim: Simulator | None = None, *,
                  migrated: bool = True) -> Path:
    sim = sim or Simulator()
    workdir.mkdir(exist_ok=True)
    config = base_config([upstream("bundled", sim, [group])],
                         groups={group: {"billing_modes": ["per_second"]}},
                         database_url=database_url(workdir))
    path.write_text(yaml.safe_dump(config))
    if migrated:
        assert gateway_cli("migrate", "--config", str(path), cwd=workdir).returncode == 0
    return path


class TestOneConfigForEveryCommand:
    def test_gateway_config_env_is_read_by_the_operator_commands(self, tmp_path: Path) -> None:
        config = _write_config(tmp_path / "prod.yaml", "official", tmp_path)
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()

        created = gateway_cli("tokens", "create", "--name", "acme", "--group", "official",
                              "--balance", "10", cwd=elsewhere, GATEWAY_CONFIG=str(config))

        assert created.returncode == 0, created.stderr
        listed = gateway_cli("tokens", "list", "--format", "json", cwd=elsewhere,
                             GATEWAY_CONFIG=str(config))
        assert [t["name"] for t in json.loads(listed.stdout)] == ["acme"]

    def test_flag_then_environment_then_working_directory(
            self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for name in ("flag", "env", "cwd"):
            (tmp_path / f"{name}.yaml").write_text(yaml.safe_dump({"max_prompt_chars": 7}))
        (tmp_path / "config.yaml").write_text(yaml.safe_dump({"max_prompt_chars": 3}))
        monkeypatch.chdir(tmp_path)
        monkeypatch.setenv("GATEWAY_CONFIG", str(tmp_path / "env.yaml"))

        assert config_path("flag.yaml") == Path("flag.yaml")
        assert config_path(None) == tmp_path / "env.yaml"
        monkeypatch.delenv("GATEWAY_CONFIG")
        assert config_path(None) == Path("config.yaml")
        assert load_settings().max_prompt_chars == 3
        (tmp_path / "config.yaml").unlink()
        assert config_path(None) is None

    def test_no_config_file_is_said_out_loud(self, tmp_path: Path) -> None:
        result = gateway_cli("tokens", "list", cwd=tmp_path)

        assert "no config file" in result.stderr
        assert "Traceback" not in result.stderr

    def test_tokens_show_prints_the_ledger(self, tmp_path: Path) -> None:
        config = _write_config(tmp_path / "config.yaml", "official", tmp_path)
        created = gateway_cli("tokens", "create", "--name", "acme", "--group", "official",
                              "--balance", "10", "--config", str(config), cwd=tmp_path)
        token_id = next(w for w in created.stdout.split() if w.startswith("tok_"))
        gateway_cli("tokens", "topup", token_id, "2.5", "--note", "welcome", cwd=tmp_path)

        table = gateway_cli("tokens", "show", token_id, cwd=tmp_path)
        shown = json.loads(gateway_cli("tokens", "show", token_id, "--format", "json",
                                       cwd=tmp_path).stdout)

        assert table.returncode == 0, table.stderr
        assert "welcome" in table.stdout
        assert "12.500000" in table.stdout
        assert shown["balance_usd"] == "12.500000"
        assert [(e["kind"], e["amount_usd"]) for e in shown["ledger"]] == [
            ("topup", "10.000000"), ("topup", "2.500000")]


@dataclass
class Served:
    process: subprocess.Popen[bytes]
    url: str
    sim_port: int
    workdir: Path

    def simulator_pid(self) -> int:
        children = _children(self.process.pid)
        assert len(children) == 1, children
        return children[0]


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    """`gateway serve --with-simulator` found through GATEWAY_CONFIG, as an operator runs it."""
    sim = Simulator(duration_s=0.3)
    config = _write_config(tmp_path / "gateway.yaml", "official", tmp_path, sim, migrated=False)
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gateway.cli", "serve", "--with-simulator", "--port", str(port),
         "--simulator-port", str(sim.port)],
        cwd=tmp_path, env=_env(GATEWAY_CONFIG=str(config)),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    served = Served(process, f"http://127.0.0.1:{port}", sim.port, tmp_path)
    children: list[int] = []
    try:
        wait_http(f"{served.url}/healthz", process)
        children = _children(process.pid)
        yield served
    finally:
        stop(process)
        for child in filter(_alive, children):  # only if a test failed to prove it gone
            os.kill(child, signal.SIGKILL)


class TestServeWithSimulator:
    def test_a_token_from_the_command_line_makes_a_video(self, served: Served) -> None:
        from openai import OpenAI

        environ = {"GATEWAY_CONFIG": str(served.workdir / "gateway.yaml")}
        created = gateway_cli("tokens", "create", "--name", "acme", "--group", "official",
                              "--balance", "10", cwd=served.workdir, **environ)
        assert created.returncode == 0, created.stderr
        words = created.stdout.split()
        token_id = next(w for w in words if w.startswith("tok_"))
        secret = next(w for w in words if w.startswith("sk-"))

        client = OpenAI(base_url=f"{served.url}/v1", api_key=secret, max_retries=0)
        SDK_CLIENTS.append(client)
        video = client.videos.create_and_poll(prompt="A lighthouse at dawn", model="sora-2",
                                              seconds="4", poll_interval_ms=100)

        assert video.status == "completed"
        shown = json.loads(gateway_cli("tokens", "show", token_id, "--format", "json",
                                       cwd=served.workdir, **environ).stdout)
        assert shown["balance_usd"] == "9.600000"
        assert [e["kind"] for e in shown["ledger"]] == ["topup", "hold", "capture"]

    @pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
    def test_stopping_the_gateway_stops_its_simulator(self, served: Served, sig: int) -> None:
        simulator = served.simulator_pid()
        assert _listening(served.sim_port)

        served.process.send_signal(sig)
        served.process.wait(timeout=20)

        assert not _alive(simulator)
        assert not _listening(served.sim_port)

    def test_a_killed_gateway_does_not_leave_its_simulator_behind(self,
                                                                   served: Served) -> None:
        simulator = served.simulator_pid()

        served.process.kill()
        served.process.wait()

        wait_for(lambda: not _alive(simulator), timeout=10)
        wait_for(lambda: not _listening(served.sim_port), timeout=5)

    def test_a_taken_simulator_port_stops_serve_with_a_reason(self, tmp_path: Path) -> None:
        config = _write_config(tmp_path / "config.yaml", "official", tmp_path, migrated=False)
        with socket.socket() as taken:
            taken.bind(("127.0.0.1", 0))
            taken.listen()
            port = taken.getsockname()[1]
            started = time.monotonic()
            result = subprocess.run(
                [sys.executable, "-m", "gateway.cli", "serve", "--with-simulator",
                 "--simulator-port", str(port), "--port", str(free_port())],
                cwd=tmp_path, env=_env(GATEWAY_CONFIG=str(config)), capture_output=True,
                text=True, timeout=60)

        assert result.returncode == 1
        assert f"port {port} is already in use" in result.stderr
        assert "Traceback" not in result.stderr
        assert time.monotonic() - started < 30
