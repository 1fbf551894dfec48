"""ASGI entry point for multi-worker serving: the app built from GATEWAY_CONFIG."""

from __future__ import annotations

import os

from gateway.app import create_app
from gateway.config import load_settings
from gateway.logs import configure_logging
from gateway.server import GatewayHttpProtocol

_settings = load_settings(os.environ.get("GATEWAY_CONFIG") or None)
configure_logging(_settings.log_level)
GatewayHttpProtocol.limits = _settings.server
app = create_app(_settings)
