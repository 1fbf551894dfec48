"""Settings: one YAML file, ``${ENV}`` expansion, ``GATEWAY_*`` overrides, validated once."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.webhooks.config import WebhooksConfig

BillingMode = Literal["per_second", "per_call"]
Flavor = Literal["openai", "compat"]

DEFAULT_SECONDS = [4, 8, 12]
_ENV_PATTERN = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


class ConfigError(Exception):
    """A configuration problem; the message names the offending key."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JobsConfig(_Strict):
    poll_interval_s: float = Field(10.0, gt=0)
    refresh_after_s: float = Field(2.0, ge=0)
    max_age_s: float = Field(7200.0, gt=0)
    # Upstream calls the reconciler makes at once against one upstream.
    poll_concurrency: int = Field(16, ge=1)
    # A lease bounds how long a crashed process can keep a job from being polled by others.
    lease_s: float = Field(30.0, gt=0)
    poll_after_ms: int = Field(2000, ge=0)


class ContentStoreConfig(_Strict):
    """Finished videos are copied here, so they outlive the upstream's expiring links."""

    enabled: bool = True
    dir: str = "./content"
    retention_s: float = Field(7 * 24 * 3600, gt=0)


class MetricsConfig(_Strict):
    # /metrics names upstreams and sums settled money: by default only the admin token or
    # metrics_token reads it; true opens it to anyone who reaches the port.
    public: bool = False


class GroupConfig(_Strict):
    billing_modes: list[BillingMode] = Field(min_length=1)
    multiplier: Decimal = Field(Decimal(1), gt=0)
    # Optional allow-list; by default a group may use every priced model.
    models: list[str] | None = None


class UpstreamConfig(_Strict):
    name: str = Field(min_length=1)
    base_url: str
    api_key: str | None = None
    api_keys: list[str] = Field(default_factory=list)
    flavor: Flavor = "openai"
    groups: list[str] = Field(min_length=1)
    models: list[str] = Field(min_length=1)
    model_map: dict[str, str] = Field(default_factory=dict)
    weight: int = Field(1, ge=0)
    timeout_s: float = Field(60.0, gt=0)
    # Connections to this upstream at once (polls, creates and content downloads together).
    max_connections: int = Field(128, ge=1)
    # Consecutive create failures that take the upstream out of rotation, and for how long.
    breaker_failures: int = Field(5, ge=1)
    breaker_cooldown_s: float = Field(30.0, gt=0)

    @field_validator("base_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http(s) URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _has_key(self) -> UpstreamConfig:
        if not self.keys:
            raise ValueError("api_key or api_keys is required (is its environment variable set?)")
        return self

    @property
    def keys(self) -> list[str]:
        keys = [self.api_key] if self.api_key else []
        return keys + [key for key in self.api_keys if key]

    def upstream_model(self, model: str) -> str:
        return self.model_map.get(model, model)


class PricingConfig(_Strict):
    per_second: dict[str, dict[str, Decimal]] = Field(default_factory=dict)
    per_call: dict[str, Decimal] = Field(default_factory=dict)


class Settings(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    database_url: str = "sqlite+aiosqlite:///./gateway.db"
    admin_token: str | None = None
    # Key for hashing gateway tokens; when unset one is generated and kept in the database.
    secret_key: str | None = None
    # A bearer token that reads /metrics and nothing else (what Prometheus is given).
    metrics_token: str | None = None
    max_upload_mb: float = Field(20, gt=0)
    max_prompt_chars: int = Field(32000, ge=1)
    # How long a process may answer token lookups and video reads from memory; other
    # processes' changes show up within this bound (0 turns the caches off).
    cache_s: float = Field(1.0, ge=0)
    log_level: str = "INFO"
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    content_store: ContentStoreConfig = Field(default_factory=ContentStoreConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    groups: dict[str, GroupConfig] = Field(
        default_factory=lambda: {
            "default": GroupConfig(billing_modes=["per_second", "per_call"]),
        }
    )
    upstreams: list[UpstreamConfig] = Field(default_factory=list)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    # Seconds each model offers; the key "default" applies to models not named.
    seconds: dict[str, list[int]] = Field(default_factory=lambda: {"default": DEFAULT_SECONDS})

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        names = [upstream.name for upstream in self.upstreams]
        for index, upstream in enumerate(self.upstreams):
            if names.count(upstream.name) > 1:
                raise ValueError(f"upstreams[{index}].name: duplicate name {upstream.name!r}")
            for group in upstream.groups:
                if group not in self.groups:
                    raise ValueError(f"upstreams[{index}].groups: unknown group {group!r}")
            for model in upstream.models:
                if model not in self.known_models:
                    raise ValueError(f"upstreams[{index}].models: {model!r} has no price")
        return self

    @property
    def known_models(self) -> set[str]:
        return set(self.pricing.per_second) | set(self.pricing.per_call)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    def seconds_for(self, model: str) -> list[int]:
        return self.seconds.get(model) or self.seconds.get("default") or DEFAULT_SECONDS

    def sizes_for(self, model: str) -> list[str]:
        return list(self.pricing.per_second.get(model, {}))


def expand_env(value: Any) -> Any:
    """Replace ``${VAR}`` and ``${VAR:-default}`` in every string of a parsed YAML tree."""
    if isinstance(value, str):
        return _ENV_PATTERN.sub(lambda m: os.environ.get(m.group(1)) or (m.group(2) or ""), value)
    if isinstance(value, dict):
        return {key: expand_env(item) for key, item in value.items()}
    if isinstance(value, list):
        return [expand_env(item) for item in value]
    return value


_OVERRIDES = {
    "GATEWAY_DATABASE_URL": "database_url",
    "GATEWAY_ADMIN_TOKEN": "admin_token",
    "GATEWAY_HOST": "host",
    "GATEWAY_PORT": "port",
    "GATEWAY_SECRET_KEY": "secret_key",
    "GATEWAY_METRICS_TOKEN": "metrics_token",
}


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from exc
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must be a mapping at the top level")
    return raw


def _location(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text or "(top level)"


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from ``path`` (or ./config.yaml if present), the environment and overrides."""
    if path is None and Path("config.yaml").exists():
        path = "config.yaml"
    data = expand_env(_read_yaml(Path(path))) if path is not None else {}
    for env, key in _OVERRIDES.items():
        if os.environ.get(env):
            data[key] = os.environ[env]
    data.update({key: value for key, value in overrides.items() if value is not None})
    try:
        return Settings.model_validate(data)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_location(error['loc'])}: {error['msg']}" for error in exc.errors()
        )
        raise ConfigError(f"invalid configuration: {problems}") from None
