"""The bundled simulator as a child of `gateway serve`: started before it, stopped with it."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import FrameType
from urllib.parse import urlsplit

from gateway.config import UpstreamConfig

HOST = "127.0.0.1"

log = logging.getLogger("gateway.simulator")


class SimulatorFailed(Exception):
    """The simulator could not be started; the message says why."""


def _listening(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((HOST, port)) == 0


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    # uvicorn shuts down gracefully and then raises the signal again; raising SystemExit here
    # (rather than dying of it) lets the `finally` that stops the simulator run.
    raise SystemExit(128 + signum)


@dataclass(frozen=True)
class SimulatorSpec:
    port: int
    flavor: str = "openai"
    keys: tuple[str, ...] = ()


def loopback_simulators(upstreams: Iterable[UpstreamConfig]) -> list[SimulatorSpec]:
    """One simulator for each upstream the config points at this machine, in its flavor,
    accepting its keys (Kling's simulator checks the JWTs they sign)."""
    specs: dict[int, SimulatorSpec] = {}
    for upstream in upstreams:
        parts = urlsplit(upstream.base_url)
        if parts.hostname in ("127.0.0.1", "localhost") and parts.port:
            specs.setdefault(parts.port, SimulatorSpec(parts.port, upstream.flavor,
                                                       tuple(upstream.keys)))
    return list(specs.values())


@contextmanager
def simulator_children(specs: Iterable[SimulatorSpec]) -> Iterator[None]:
    with ExitStack() as stack:
        for spec in specs:
            stack.enter_context(simulator_child(spec.port, flavor=spec.flavor, keys=spec.keys))
        yield


@contextmanager
def simulator_child(port: int, timeout_s: float = 15.0, *, flavor: str = "openai",
                    keys: tuple[str, ...] = ()) -> Iterator[subprocess.Popen[bytes]]:
    """Run `gateway simulate` on ``port`` for as long as the block runs, however it ends."""
    if _listening(port):
        raise SimulatorFailed(f"port {port} is already in use; stop what listens there or "
                              "pass --simulator-port")
    accepted = [arg for key in keys for arg in ("--api-key", key)]
    child = subprocess.Popen([sys.executable, "-m", "gateway.cli", "simulate", "--host", HOST,
                              "--port", str(port), "--flavor", flavor, *accepted,
                              "--exit-with-parent"])
    previous = {sig: signal.signal(sig, _exit_on_signal) for sig in (signal.SIGTERM,
                                                                    signal.SIGINT)}
    try:
        deadline = time.monotonic() + timeout_s
        while not _listening(port):
            if child.poll() is not None or time.monotonic() > deadline:
                raise SimulatorFailed(f"the simulator did not start on port {port}")
            time.sleep(0.05)
        log.info("bundled simulator running", extra={"port": port, "flavor": flavor})
        yield child
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop(child)


def _stop(child: subprocess.Popen[bytes]) -> None:
    if child.poll() is None:
        child.terminate()
        try:
            child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def exit_with_parent() -> None:
    """End this process when its parent is gone, even if the parent was killed with SIGKILL."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
