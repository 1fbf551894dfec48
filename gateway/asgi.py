"""ASGI entry point for multi-worker serving: the app built from GATEWAY_CONFIG."""

from __future__ import annotations

from gateway.app import create_app
from gateway.config import load_settings
from gateway.logs import configure_logging
from gateway.server import GatewayHttpProtocol

_settings = load_settings()
configure_logging(_settings.log_level)
GatewayHttpProtocol.limits = _settings.server
app = create_app(_settings)
