"""Simulators of the native video vendors of spec §8, one module per vendor.

Each speaks its vendor's own protocol under the vendor's versioned base path, so an upstream
is pointed at ``http://host:port<BASE_PATHS[flavor]>``. They share the job clock, prompt
directives, deterministic content and the ``/_sim/...`` control routes (``common``).
"""

from __future__ import annotations

from importlib import import_module

from starlette.applications import Starlette

VENDOR_FLAVORS = ("ark", "dashscope", "kling", "gemini", "minimax", "vidu")

# The versioned API root each vendor's docs give, as the gateway's base_url ends.
BASE_PATHS = {
    "openai": "/v1",
    "compat": "/v1",
    "ark": "/api/v3",
    "dashscope": "/api/v1",
    "kling": "/v1",
    "gemini": "/v1beta",
    "minimax": "/v1",
    "vidu": "/ent/v2",
}


def create_vendor_app(
    flavor: str,
    *,
    duration_s: float = 2.0,
    api_keys: list[str] | None = None,
    content_size: int = 256 * 1024,
) -> Starlette:
    """Build one vendor's simulator; ``app.state.simulator`` exposes it to in-process tests."""
    if flavor not in VENDOR_FLAVORS:
        raise ValueError(f"unknown vendor flavor {flavor!r}; expected one of {VENDOR_FLAVORS}")
    # Imported here: the vendor modules import gateway.simulator, which imports this package.
    module = import_module(f"gateway.simulators.{flavor}")
    simulator = module.SIMULATOR(duration_s=duration_s, api_keys=api_keys,
                                 content_size=content_size)
    app = Starlette(routes=simulator.routes())
    app.state.simulator = simulator
    return app
