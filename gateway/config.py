"""Settings: one YAML file, ``${ENV}`` expansion, ``GATEWAY_*`` overrides, validated once."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateway.archive.config import ArchiveConfig
from gateway.chat.config import ChatConfig
from gateway.ledger.pricing import MAX_USD
from gateway.ledger.sizes import offered, parse_size
from gateway.webhooks.config import WebhooksConfig

BillingMode = Literal["per_second", "per_call"]
Flavor = Literal["openai", "compat", "ark", "dashscope", "kling", "gemini", "minimax", "vidu"]

DEFAULT_SECONDS = [4, 8, 12]
# A job's length is stored as a 32-bit integer; a day is far past any model's longest video.
MAX_SECONDS = 86_400
Seconds = Annotated[int, Field(ge=1, le=MAX_SECONDS)]
# A negative price would pay the customer for a job.
Price = Annotated[Decimal, Field(ge=0)]
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
    """Deprecated: the ``archive:`` section's predecessor, read for one more release as an
    alias of ``archive.dir`` and ``archive.retention_days``."""

    enabled: bool = True
    dir: str = "./content"
    retention_s: float = Field(7 * 24 * 3600, gt=0)

    def as_archive(self) -> dict[str, Any]:
        return {"backend": "local", "dir": self.dir, "retention_days": self.retention_s / 86400}


class MetricsConfig(_Strict):
    # /metrics names upstreams and sums settled money: by default only the admin token or
    # metrics_token reads it; true opens it to anyone who reaches the port.
    public: bool = False
    # Seconds between two ticks of the event loop lag ticker (gateway_event_loop_lag_*);
    # unset, there is no ticker.
    loop_lag_interval_s: float | None = Field(None, gt=0)


class ServerConfig(_Strict):
    """How long a client may take to send a request, and how many connections a process keeps.

    Both deadlines bound a whole phase, not the pause between two reads, so a client that
    trickles one byte at a time cannot hold a connection longer than a silent one.
    """

    header_timeout_s: float = Field(10.0, gt=0)
    # A deadline that passes while the gateway itself is behind (it has not yet taken the
    # bytes already sent) starts over: a slow reader is not the client's fault.
    body_timeout_s: float = Field(60.0, gt=0)
    max_connections: int = Field(1000, ge=1)
    # The address clients reach the gateway at (behind a proxy, its public https URL); links
    # the gateway hands out start with it. Unset: the address the request came in on.
    public_url: str | None = Field(None, pattern=r"^https?://[^\s?#]+$")


class GroupConfig(_Strict):
    billing_modes: list[BillingMode] = Field(min_length=1)
    multiplier: Decimal = Field(Decimal(1), gt=0)
    # Optional allow-list; by default a group may use every priced model.
    models: list[str] | None = None
    # Days its stored videos are kept; unset: archive.retention_days; null: forever.
    retention_days: float | None = Field(None, gt=0)


class PricingConfig(_Strict):
    # USD per second by model and size; a size key is exact (1280x720, 1280*720) or a tier
    # (720p), and a requested size matches its tier by its short side.
    per_second: dict[str, dict[str, Price]] = Field(default_factory=dict)
    per_call: dict[str, Price] = Field(default_factory=dict)
    # USD per second added when the job generates sound: a priced dimension, not a free switch.
    audio_per_second: dict[str, Price] = Field(default_factory=dict)

    @field_validator("per_second")
    @classmethod
    def _sizes(cls, value: dict[str, dict[str, Price]]) -> dict[str, dict[str, Price]]:
        for model, sizes in value.items():
            for size in sizes:
                if parse_size(size) is None:
                    raise ValueError(f"{model}.{size}: a size is WxH, W*H or a tier like 720p")
        return value


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
    # What this upstream charges the operator, in the shape of ``pricing``: each capture records
    # it beside the customer's charge, so usage reports show cost and margin.
    cost: PricingConfig | None = None

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
    server: ServerConfig = Field(default_factory=ServerConfig)
    jobs: JobsConfig = Field(default_factory=JobsConfig)
    archive: ArchiveConfig = Field(default_factory=ArchiveConfig)
    # Deprecated alias of ``archive`` (see ContentStoreConfig); ``archive`` wins when both are set.
    content_store: ContentStoreConfig | None = None
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    webhooks: WebhooksConfig = Field(default_factory=WebhooksConfig)
    chat: ChatConfig = Field(default_factory=ChatConfig)
    groups: dict[str, GroupConfig] = Field(
        default_factory=lambda: {
            "default": GroupConfig(billing_modes=["per_second", "per_call"]),
        }
    )
    upstreams: list[UpstreamConfig] = Field(default_factory=list)
    pricing: PricingConfig = Field(default_factory=PricingConfig)
    # Seconds each model offers; the key "default" applies to models not named.
    seconds: dict[str, list[Seconds]] = Field(
        default_factory=lambda: {"default": DEFAULT_SECONDS})

    @model_validator(mode="before")
    @classmethod
    def _content_store_alias(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("content_store") and "archive" not in data:
            old = ContentStoreConfig.model_validate(data["content_store"])
            data = {**data, "archive": old.as_archive()}
        return data

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
        self._check_prices()
        self._check_aliases()
        return self

    def _check_aliases(self) -> None:
        """Every chat alias names a job the gateway can price: a priced model, a size and a
        length it offers."""
        for name, alias in self.chat.aliases.items():
            key = f"chat.aliases.{name}"
            if name in self.known_models:
                raise ValueError(f"{key}: an alias may not share a model's name")
            if alias.model not in self.known_models:
                raise ValueError(f"{key}.model: {alias.model!r} has no price")
            table = self.pricing.per_second.get(alias.model)
            if (offered(table, alias.size) if table else parse_size(alias.size)) is None:
                raise ValueError(f"{key}.size: {alias.size!r} is not offered for "
                                 f"{alias.model!r}")
            if alias.seconds not in self.seconds_for(alias.model):
                raise ValueError(f"{key}.seconds: {alias.seconds} is not offered for "
                                 f"{alias.model!r}")

    def _check_prices(self) -> None:
        """Refuse a config that could price one job past what a token may hold."""
        for name, group in self.groups.items():
            factor = f"groups.{name}.multiplier"
            for model, sizes in self.pricing.per_second.items():
                longest = max(self.seconds_for(model))
                for size, usd in sizes.items():
                    _bounded(usd * longest * group.multiplier,
                             f"pricing.per_second.{model}.{size} x {longest} s x {factor}")
            for model, usd in self.pricing.per_call.items():
                _bounded(usd * group.multiplier, f"pricing.per_call.{model} x {factor}")
            for model, usd in self.pricing.audio_per_second.items():
                longest = max(self.seconds_for(model))
                top = max(self.pricing.per_second.get(model, {}).values(), default=Decimal(0))
                _bounded((usd + top) * longest * group.multiplier,
                         f"pricing.audio_per_second.{model} x {longest} s x {factor}")

    @property
    def known_models(self) -> set[str]:
        return set(self.pricing.per_second) | set(self.pricing.per_call)

    @property
    def max_upload_bytes(self) -> int:
        return int(self.max_upload_mb * 1024 * 1024)

    @property
    def legacy_content_dir(self) -> Path:
        """Where the archive's predecessor kept its copies (``content_store.dir``, by default
        ``./content``): the archive imports a job's copy from there before asking the
        upstream, whose link may be long gone."""
        return Path(self.content_store.dir if self.content_store else ContentStoreConfig().dir)

    def retention_days(self, group: str) -> float | None:
        """Days a stored video of ``group`` is kept (None: forever)."""
        config = self.groups.get(group)
        if config is not None and "retention_days" in config.model_fields_set:
            return config.retention_days
        return self.archive.retention_days

    def seconds_for(self, model: str) -> list[int]:
        return self.seconds.get(model) or self.seconds.get("default") or DEFAULT_SECONDS

    def sizes_for(self, model: str) -> list[str]:
        return list(self.pricing.per_second.get(model, {}))


def _bounded(price: Decimal, source: str) -> None:
    if price > MAX_USD:
        raise ValueError(f"{source} prices a job at USD {price:f}, more than one job may cost "
                         f"(USD {MAX_USD})")


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


def config_path(path: str | Path | None = None) -> Path | None:
    """The config file every command reads: ``path``, else $GATEWAY_CONFIG, else ./config.yaml.

    None means no file: the built-in defaults apply.
    """
    if path is not None and str(path):
        return Path(path)
    if os.environ.get("GATEWAY_CONFIG"):
        return Path(os.environ["GATEWAY_CONFIG"])
    return Path("config.yaml") if Path("config.yaml").exists() else None


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Load settings from the config file (see config_path), the environment and overrides."""
    found = config_path(path)
    data = expand_env(_read_yaml(found)) if found is not None else {}
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
