from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.s3 import s3_server  # noqa: F401  (a fixture, found by name)
from tests.support.servers import (
    SDK_CLIENTS,
    Gateway,
    Simulator,
    base_config,
    close_sdk_clients,
    upstream,
)


@pytest.fixture(scope="session", autouse=True)
def _close_fixture_clients() -> Iterator[None]:
    """SDK clients made by module and session fixtures, closed when the run ends."""
    yield
    close_sdk_clients()


@pytest.fixture(autouse=True)
def _close_test_clients() -> Iterator[None]:
    """SDK clients a test made (after its broader fixtures made theirs), closed when it ends."""
    keep = len(SDK_CLIENTS)
    yield
    close_sdk_clients(keep)


@pytest.fixture(scope="session")
def simulator() -> Iterator[Simulator]:
    sim = Simulator(flavor="openai", duration_s=1.0).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def compat_simulator() -> Iterator[Simulator]:
    sim = Simulator(flavor="compat", duration_s=1.0).start()
    yield sim
    sim.stop()


@pytest.fixture(scope="session")
def gateway(tmp_path_factory: pytest.TempPathFactory, simulator: Simulator,
            compat_simulator: Simulator) -> Iterator[Gateway]:
    """One shared gateway: tests isolate themselves by issuing their own tokens."""
    config = base_config([
        upstream("primary", simulator, ["official", "budget", "restricted"]),
        upstream("reseller", compat_simulator, ["resale"]),
    ])
    gw = Gateway(tmp_path_factory.mktemp("gateway"), config).start()
    yield gw
    gw.stop()


@pytest.fixture
def make_gateway(tmp_path: Path) -> Iterator[Callable[..., Gateway]]:
    """Start a dedicated gateway for a test that needs its own config or must kill it."""
    started: list[Gateway] = []

    def make(upstreams: list[dict[str, Any]], **overrides: Any) -> Gateway:
        gw = Gateway(tmp_path, base_config(upstreams, **overrides)).start()
        started.append(gw)
        return gw

    yield make
    for gw in started:
        gw.stop()


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.1) -> Any:
    """Poll until predicate() is truthy; returns its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s")
