"""What of an upstream must never reach a client, and the check that none of it did."""

from __future__ import annotations

from collections.abc import Iterable

from tests.support.servers import SIM_KEY, Simulator

# Words only the simulator's [fail-leaky] and [reject-leaky] texts carry: the vendor's own
# codes, param and worker names.
LEAKY_WORDS = ("gpu-07", "E_WORKER_7731_OOM", "ContentSafety", "worker_pool_gpu07")


def upstream_traces(sim: Simulator, *, upstream_id: str | None = None,
                    key: str = SIM_KEY) -> list[str]:
    """Every way the simulator's leaky error texts can name it, its key and its job."""
    traces = [key, "sk-sim-", sim.url, sim.base_url, f"127.0.0.1:{sim.port}", "127.0.0.1",
              sim.name, *LEAKY_WORDS]
    return traces + ([upstream_id, upstream_id.removeprefix("sim_")] if upstream_id else [])


def assert_hidden(text: str, needles: Iterable[str]) -> None:
    lowered = text.lower()
    leaked = [needle for needle in needles if needle and needle.lower() in lowered]
    assert not leaked, f"{leaked} reached the client in {text!r}"
