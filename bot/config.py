"""Configuration: one ``Settings`` object, read once from the environment or ``.env``.

No other module reads ``os.environ``; the CLI builds ``Settings`` and passes it
down. Secrets are ``SecretStr`` so they never print in a repr, a log or a span.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.endpoints import DISCORD_API_BASE

HONEYCOMB_ENDPOINT = "https://api.honeycomb.io"


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message is one line for stderr."""


class Settings(BaseSettings):
    """Every environment variable of DESIGN.md's configuration table."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    discord_token: SecretStr | None = None
    discord_api_base: str = DISCORD_API_BASE
    discord_gateway_url: str | None = None
    bot_prefix: str = Field(default="!", min_length=1, max_length=8)

    flags_file: Path = Path("flags.json")
    span_store: str = ".chatops/spans.db"
    commands_file: Path = Path("commands.toml")

    otel_exporter_otlp_endpoint: str | None = None
    otel_exporter_otlp_headers: SecretStr | None = None
    otel_service_name: str = "chatops-bot"
    deployment_environment: str | None = None
    honeycomb_api_key: SecretStr | None = None
    honeycomb_marker_key: SecretStr | None = None

    catfact_api_url: str = "https://catfact.ninja"
    scryfall_api_url: str = "https://api.scryfall.com"

    git_commit: str | None = None

    health_port: int = Field(default=8080, ge=0, le=65535)

    azure_subscription_id: str | None = None
    azure_resource_group: Annotated[list[str], NoDecode] = Field(default_factory=list)

    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Annotated[list[int], NoDecode] | None = None

    circleci_hook_secret: SecretStr | None = None
    circleci_hook_service: str = "circleci"
    circleci_otlp_endpoint: str | None = None

    # external commands (issue 3)
    external_timeout_s: float = Field(default=8.0, gt=0, le=120)
    external_connect_timeout_s: float = Field(default=3.0, gt=0, le=60)
    external_max_response_bytes: int = Field(default=1024 * 1024, ge=1024)
    external_typing_after_s: float = Field(default=0.5, ge=0)
    external_retry_backoff_s: float = Field(default=0.25, ge=0, le=10)
    external_cooldown_rate: int = Field(default=3, ge=1)
    external_cooldown_per_s: float = Field(default=10.0, gt=0)
    external_max_concurrency: int = Field(default=4, ge=1)
    scryfall_rate_per_s: float = Field(default=10.0, gt=0, le=10)

    @field_validator("azure_resource_group", mode="before")
    @classmethod
    def _split_groups(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("shard_ids", mode="before")
    @classmethod
    def _split_shards(cls, value: object) -> object:
        if isinstance(value, str):
            return [int(part) for part in value.replace(",", " ").split()]
        return value

    @property
    def span_store_path(self) -> Path | None:
        """The SQLite span store, or None when ``SPAN_STORE=off``."""
        if self.span_store.strip().lower() in {"off", "none", ""}:
            return None
        return Path(self.span_store)

    @property
    def otlp_endpoint(self) -> str | None:
        """Where spans go over OTLP/HTTP: the explicit endpoint, else Honeycomb's."""
        if self.otel_exporter_otlp_endpoint:
            return self.otel_exporter_otlp_endpoint
        if self.honeycomb_api_key:
            return HONEYCOMB_ENDPOINT
        return None

    @property
    def uses_custom_api(self) -> bool:
        return self.discord_api_base.rstrip("/") != DISCORD_API_BASE


def load_settings(**overrides: object) -> Settings:
    """Build ``Settings``; any invalid value becomes one ``ConfigError`` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = ".".join(str(part) for part in first["loc"]).upper() or "configuration"
        raise ConfigError(f"invalid {name}: {first['msg']}") from None
