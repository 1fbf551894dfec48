"""docker-compose.yml as an operator starts it, and the check CI runs on it.

No container engine is needed: the file is read as compose reads it, the example config is
loaded with the environment compose gives the gateways, and `.ci/compose-check` is run with
the engine out of reach (the stack run itself belongs to .ci/run, where an engine exists).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.config import load_settings

ROOT = Path(__file__).resolve().parents[1]
GATEWAYS = ("gateway-1", "gateway-2")


def _compose() -> dict[str, Any]:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())  # type: ignore[no-any-return]


def _check(root: Path) -> subprocess.CompletedProcess[str]:
    # DOCKER points nowhere so no stack is started here, whatever this machine has.
    return subprocess.run(["bash", str(root / ".ci" / "compose-check")], capture_output=True,
                          text=True, timeout=300, env={**os.environ, "DOCKER": "/nonexistent"})


class TestComposeFile:
    def test_the_gateways_upstream_is_the_simulator_service(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        services = _compose()["services"]
        for name in GATEWAYS:
            url = services[name]["environment"]["SIMULATOR_URL"]
            simulator = services[urlsplit(url).hostname]
            assert simulator["command"][0] == "simulate"
            assert str(urlsplit(url).port) in simulator["command"]
            assert "0.0.0.0" in simulator["command"]  # reachable from the other containers
            assert "healthcheck" in simulator
            assert services[name]["depends_on"][urlsplit(url).hostname] == {
                "condition": "service_healthy"}

            monkeypatch.setenv("SIMULATOR_URL", url)
            settings = load_settings(ROOT / "config.example.yaml")
            assert settings.upstreams[0].base_url == url

    def test_outside_compose_the_example_config_uses_the_local_simulator(
            self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.delenv("SIMULATOR_URL", raising=False)

        settings = load_settings(ROOT / "config.example.yaml")

        assert settings.upstreams[0].base_url == "http://127.0.0.1:9100/v1"

    def test_the_replicas_share_one_archive(self) -> None:
        services = _compose()["services"]
        mounts = [set(services[name]["volumes"]) for name in GATEWAYS]
        assert "archive:/data/archive" in mounts[0] & mounts[1]

    def test_the_proxy_cuts_off_slow_clients(self) -> None:
        nginx = _compose()["configs"]["nginx"]["content"]

        assert re.search(r"^\s*client_header_timeout \d+s;", nginx, re.MULTILINE)
        assert re.search(r"^\s*client_body_timeout \d+s;", nginx, re.MULTILINE)

    def test_no_local_config_database_or_repository_enters_the_image(self) -> None:
        ignored = (ROOT / ".dockerignore").read_text().split()

        for entry in ("config.yaml", "*.db", ".git", "archive", ".env"):
            assert entry in ignored


class TestComposeCheck:
    def test_it_validates_the_file_or_says_why_it_cannot(self) -> None:
        result = _check(ROOT)

        assert result.returncode == 0, result.stdout + result.stderr
        said = result.stdout
        assert ("is valid" in said and "no container engine" in said) or "skipping" in said

    def test_a_broken_compose_file_fails_it(self, tmp_path: Path) -> None:
        if "is valid" not in _check(ROOT).stdout:
            pytest.skip("no Docker Compose v2 client on this machine to validate with")
        shutil.copytree(ROOT / ".ci", tmp_path / ".ci")
        for name in ("Dockerfile", "config.example.yaml"):
            shutil.copy(ROOT / name, tmp_path / name)
        broken = (ROOT / "docker-compose.yml").read_text().replace(
            "condition: service_healthy", "condition: when_it_feels_like_it")
        (tmp_path / "docker-compose.yml").write_text(broken)

        result = _check(tmp_path)

        assert result.returncode != 0
        assert "is valid" not in result.stdout
