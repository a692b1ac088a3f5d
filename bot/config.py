"""Configuration: one ``Settings`` object, read once from the environment or ``.env``.

No other module reads ``os.environ``; the CLI builds ``Settings`` and passes it
down. Secrets are ``SecretStr`` so they never print in a repr, a log or a span.
"""

from __future__ import annotations

import re
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal
from urllib.parse import unquote, urlsplit

from pydantic import (
    AfterValidator,
    AliasChoices,
    BeforeValidator,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from telemetry.timespec import parse_timespan

if TYPE_CHECKING:
    from commands.toolkit.flags import FlagsConfig
    from telemetry.setup import TelemetryConfig
    from telemetry.trace_links import TraceLinks

HONEYCOMB_ENDPOINT = "https://api.honeycomb.io"
HONEYCOMB_TEAM_HEADER = "x-honeycomb-team"
DISCORD_API_BASE = "https://discord.com/api/v10"
DEFAULT_SERVICE_NAME = "chatops-bot"


def parse_headers(text: str | None) -> dict[str, str]:
    """Parse ``OTEL_EXPORTER_OTLP_HEADERS`` (``k=v,k2=v2``, values URL-encoded)."""
    headers: dict[str, str] = {}
    for item in (text or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            headers[key.strip().lower()] = unquote(value.strip())
    return headers


def parse_resource_attributes(text: str | None) -> dict[str, str]:
    """Parse ``OTEL_RESOURCE_ATTRIBUTES`` as the SDK does (``k=v,k2=v2``, values URL-encoded)."""
    attributes: dict[str, str] = {}
    for item in (text or "").split(","):
        key, sep, value = item.partition("=")
        if sep and key.strip():
            attributes[key.strip()] = unquote(value.strip())
    return attributes


TRACES_EXPORTERS = ("otlp", "console", "none")
OTLP_PROTOCOL = "http/protobuf"


def traces_exporters(value: list[str]) -> list[str]:
    """``OTEL_TRACES_EXPORTER``: ``otlp``, ``console``, ``none``, or a list of the first two."""
    names = [name.lower() for name in value] or ["otlp"]
    unknown = [name for name in names if name not in TRACES_EXPORTERS]
    if unknown:
        raise ValueError(f"{unknown[0]!r} is not supported: use otlp, console or none")
    if "none" in names and len(set(names)) > 1:
        raise ValueError("none cannot be combined with another exporter")
    return names


def otlp_protocol(value: str) -> str:
    """Only OTLP over HTTP with protobuf is spoken; anything else is refused, not ignored."""
    value = value.strip().lower()
    if value == "grpc":
        raise ValueError("grpc is not supported: use http/protobuf (OTLP over HTTP)")
    if value != OTLP_PROTOCOL:
        raise ValueError(f"{value!r} is not supported: use http/protobuf")
    return value


def split_list(value: object) -> object:
    """``a, b`` or ``a b`` in the environment becomes a list (lists pass through)."""
    if isinstance(value, str):
        return value.replace(",", " ").split()
    return value


CommaList = Annotated[list[str], NoDecode, BeforeValidator(split_list)]


def blank_is_none(value: object) -> object:
    """An optional setting left empty (``NAME=`` in a ``.env`` file) is unset."""
    return None if isinstance(value, str) and not value.strip() else value


def absolute_url(*schemes: str) -> AfterValidator:
    """A URL with one of ``schemes`` and a host: without them every call fails later, far away."""

    def check(value: str) -> str:
        value = value.strip()
        try:
            parts = urlsplit(value)
            _ = parts.port  # a port out of range or not a number raises
        except ValueError:
            parts = None
        if parts is None or parts.scheme.lower() not in schemes or not parts.hostname:
            starts = " or ".join(f"{scheme}://" for scheme in schemes)
            raise ValueError(f"must be an absolute URL starting with {starts}")
        return value

    return AfterValidator(check)


def not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


def otlp_base(value: str) -> str:
    """An OTLP/HTTP base URL: the exporter appends ``/v1/traces`` itself."""
    if value.rstrip("/").endswith("/v1/traces"):
        raise ValueError("give the base URL: /v1/traces is appended to it")
    return value


WebUrl = Annotated[str, absolute_url("https", "http")]
OptionalWebUrl = Annotated[WebUrl | None, BeforeValidator(blank_is_none)]
OtlpEndpoint = Annotated[
    Annotated[str, absolute_url("https", "http"), AfterValidator(otlp_base)] | None,
    BeforeValidator(blank_is_none),
]
GatewayUrl = Annotated[
    Annotated[str, absolute_url("wss", "ws")] | None, BeforeValidator(blank_is_none)
]
Name = Annotated[str, AfterValidator(not_blank)]

_SLUG_PART = re.compile(r"^[A-Za-z0-9_.-]+$")


def circleci_project_slug(value: str) -> str:
    """A CircleCI project slug goes into an API path: ``gh/org/repo``, nothing else."""
    parts = value.split("/")
    if len(parts) != 3 or not all(_SLUG_PART.match(part) and part.strip(".") for part in parts):
        raise ValueError(f"not a CircleCI project slug like gh/org/repo: {value!r}")
    return value


ProjectSlugs = Annotated[
    list[Annotated[str, AfterValidator(circleci_project_slug)]],
    NoDecode,
    BeforeValidator(split_list),
]


OtlpProtocol = Annotated[
    Annotated[str, AfterValidator(otlp_protocol)] | None, BeforeValidator(blank_is_none)
]


class ConfigError(Exception):
    """A configuration value is missing or invalid; the message is one line for stderr."""


class Settings(BaseSettings):
    """The bot's settings, one per environment variable (docs/running.md, "Configuration")."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        # "inf" would make a rate window or a poll interval never end.
        allow_inf_nan=False,
    )

    discord_token: SecretStr | None = None
    discord_api_base: WebUrl = DISCORD_API_BASE
    discord_gateway_url: GatewayUrl = None
    bot_prefix: Name = Field(default="!", min_length=1, max_length=8)
    # Where other bots share the prefix: an unknown ``!name`` gets no reply (still traced).
    silent_unknown_commands: bool = False

    # abuse limits (bot-wide)
    user_command_rate: int = Field(default=8, ge=1)
    user_command_per_s: float = Field(default=10.0, gt=0)
    max_argument_chars: int = Field(default=1000, ge=1)
    max_concurrent_expensive: int = Field(default=16, ge=1)
    # A slash command not answered after this long is deferred (Discord allows 3 s).
    slash_defer_after_s: float = Field(default=2.0, gt=0, le=2.5)

    flags_file: Path = Path("flags.json")
    span_store: str = ".chatops/spans.db"
    commands_file: Path = Path("commands.toml")

    otel_exporter_otlp_endpoint: OtlpEndpoint = None
    otel_exporter_otlp_headers: SecretStr | None = None
    # The traces-specific ones win and are used as given (no /v1/traces appended).
    otel_exporter_otlp_traces_endpoint: OptionalWebUrl = None
    otel_exporter_otlp_traces_headers: SecretStr | None = None
    otel_traces_exporter: Annotated[
        list[str], NoDecode, BeforeValidator(split_list), AfterValidator(traces_exporters)
    ] = Field(default_factory=lambda: ["otlp"])
    otel_exporter_otlp_protocol: OtlpProtocol = None
    otel_exporter_otlp_traces_protocol: OtlpProtocol = None
    otel_resource_attributes: str | None = None
    # Categories as the conventions define them (``http``, ``http/dup``, ``database``, ...);
    # only ``http/dup`` changes anything here: stable HTTP names are the default.
    otel_semconv_stability_opt_in: CommaList = Field(default_factory=list)
    # TLS for the OTLP exporter, as the SDK names it (the traces-specific variable first).
    otlp_certificate: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", "OTEL_EXPORTER_OTLP_CERTIFICATE"
        ),
    )
    otlp_client_key: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", "OTEL_EXPORTER_OTLP_CLIENT_KEY"
        ),
    )
    otlp_client_certificate: Path | None = Field(
        default=None,
        validation_alias=AliasChoices(
            "OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"
        ),
    )
    # A proxy for outgoing HTTP: the OTLP exporter then uses the SDK's proxy-aware transport.
    https_proxy: str | None = None
    http_proxy: str | None = None
    # None: service.name from OTEL_RESOURCE_ATTRIBUTES, else chatops-bot (``service_name``).
    otel_service_name: Name | None = None
    deployment_environment: str | None = None
    honeycomb_api_key: SecretStr | None = None
    honeycomb_marker_key: SecretStr | None = None
    # Trace links in replies and announcements (telemetry/trace_links.py): the team and
    # environment slugs as they appear in Honeycomb's UI URLs. Unset: bare trace ids.
    honeycomb_team: Name | None = None
    honeycomb_environment: Name | None = None

    catfact_api_url: WebUrl = "https://catfact.ninja"
    scryfall_api_url: WebUrl = "https://api.scryfall.com"

    git_commit: str | None = None

    # Where the console keeps its prompt history (``console_history_path``).
    xdg_state_home: Path | None = None

    health_port: int = Field(default=8080, ge=0, le=65535)
    # One discord.gateway.health span per interval (latency, resumes...); 0: none.
    gateway_health_interval_s: float = Field(default=60.0, ge=0, le=86_400)
    # The CircleCI webhook on a port of its own, so the health port need not be public;
    # unset (or equal to HEALTH_PORT): served beside /healthz, as before.
    webhook_port: int | None = Field(default=None, ge=0, le=65535)

    azure_subscription_id: str | None = None
    azure_resource_group: CommaList = Field(default_factory=list)

    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Annotated[
        list[Annotated[int, Field(ge=0)]] | None, NoDecode, BeforeValidator(split_list)
    ] = None

    # false: this process runs neither the CircleCI receiver nor the BuildKite poller, even
    # when they are configured (shard containers other than the first; docs/azure.md)
    ci_intake: bool = True
    circleci_hook_secret: SecretStr | None = None
    circleci_hook_service: Name = "circleci"
    circleci_otlp_endpoint: OtlpEndpoint = None
    # Replays: deliveries older than this are refused; accepted ids are kept in this file.
    circleci_hook_max_age_s: float = Field(default=3600.0, ge=60, le=7 * 86_400)
    circleci_state_db: Path = Path(".chatops/circleci.db")
    # How CircleCI workflow/job span ids are derived (docs/ci-tracing.md#ids); set
    # "circleci-hook" to meet traces made by that tool (job span = job UUID's first 8 bytes).
    circleci_id_scheme: Literal["chatops", "circleci-hook"] = "chatops"
    # True when the CircleCI webhook sends workflow and job spans: `ci finish` then leaves
    # them to it (no duplicates); false: `ci finish` sends them itself.
    ci_webhook_spans: bool = False

    # pipeline (issues 7, 8)
    ci_service_name: Name = "ci"
    ci_export_timeout_s: float = Field(default=3.0, gt=0, le=60)
    # `ci step` / `ci finish` also write their spans to this span store (a runner on the
    # bot's host, a developer's machine); unset: the collector only.
    ci_span_store: Path | None = None
    buildkite_api_token: SecretStr | None = None
    buildkite_api_url: WebUrl = "https://api.buildkite.com"
    buildkite_org: str | None = None
    buildkite_pipelines: CommaList = Field(default_factory=list)
    buildkite_service_name: Name = "buildkite"
    buildkite_state_db: Path = Path(".chatops/buildkite.db")
    buildkite_poll_interval_s: float = Field(default=60.0, ge=1)
    # How far back a pipeline with no cursor yet is exported (Honeycomb keeps 60 days).
    buildkite_backfill: timedelta = Field(
        default=timedelta(days=60), ge=timedelta(0), le=timedelta(days=366)
    )
    # CircleCI cancellations without the webhook: the API v2 poller (docs/ci-tracing.md,
    # "CircleCI cancellations"). Token: a personal API token (secret); projects: vcs/org/repo.
    circleci_token: SecretStr | None = None
    circleci_api_url: WebUrl = "https://circleci.com/api/v2"
    circleci_projects: ProjectSlugs = Field(default_factory=list)
    circleci_poll_interval_s: float = Field(default=120.0, ge=1)
    # Pipelines created longer ago than this are not asked about (nor remembered).
    circleci_poll_lookback: timedelta = Field(
        default=timedelta(days=1), ge=timedelta(minutes=10), le=timedelta(days=30)
    )
    circleci_poll_state_db: Path = Path(".chatops/circleci-poll.db")
    # Where finished CI runs are announced (a text channel id); unset: only ``!builds``.
    ci_announce_channel_id: int | None = Field(default=None, gt=0)

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

    # feature flags (issue 4)
    # Where flags come from: ``file`` evaluates FLAGS_FILE in-process; ``rpc`` asks a
    # flagd server per evaluation; ``in-process`` syncs flag definitions from a flagd
    # server and evaluates locally; ``none`` evaluates nothing (code defaults, and
    # permission flags deny).
    flags_provider: Literal["file", "rpc", "in-process", "none"] = "file"
    flagd_host: str = "localhost"
    flagd_port: int | None = Field(default=None, ge=1, le=65535)
    flagd_tls: bool = False
    # At most how often the file provider looks at FLAGS_FILE's modification time
    # (when a flag is evaluated; there is no watcher thread).
    flags_poll_ms: int = Field(default=500, ge=10, le=60_000)

    @field_validator("otel_exporter_otlp_headers", "otel_exporter_otlp_traces_headers")
    @classmethod
    def _check_headers(cls, value: SecretStr | None) -> SecretStr | None:
        # An entry without "=" would be dropped, and the collector would refuse every
        # export for want of its key. The value is a secret: the message never shows it.
        items = (value.get_secret_value() if value else "").split(",")
        for number, item in enumerate(items, start=1):
            key, sep, _ = item.partition("=")
            if item.strip() and not (sep and key.strip()):
                raise ValueError(f"entry {number} is not key=value")
        return value

    @model_validator(mode="after")
    def _check_shards(self) -> Settings:
        if self.shard_ids and len(set(self.shard_ids)) < len(self.shard_ids):
            raise ValueError("SHARD_IDS names a shard twice")
        if self.shard_ids and self.shard_count is not None:
            bad = [shard for shard in self.shard_ids if not 0 <= shard < self.shard_count]
            if bad:
                raise ValueError(f"SHARD_IDS {bad} are outside 0..{self.shard_count - 1}")
        return self

    @property
    def span_store_path(self) -> Path | None:
        """The SQLite span store, or None when ``SPAN_STORE=off``."""
        if self.span_store.strip().lower() in {"off", "none", ""}:
            return None
        return Path(self.span_store)

    @property
    def otlp_traces_url(self) -> str | None:
        """Where spans go over OTLP/HTTP, the full URL; None when no OTLP export is wanted.

        ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` as given, else the base endpoint plus
        ``/v1/traces``, else Honeycomb's (``HONEYCOMB_API_URL``) when ``HONEYCOMB_API_KEY``
        is set; ``OTEL_TRACES_EXPORTER`` without ``otlp`` turns all of it off.
        """
        from telemetry.setup import traces_url

        if "otlp" not in self.otel_traces_exporter:
            return None
        if self.otel_exporter_otlp_traces_endpoint:
            return self.otel_exporter_otlp_traces_endpoint.strip()
        if self.otel_exporter_otlp_endpoint:
            return traces_url(self.otel_exporter_otlp_endpoint)
        if self.honeycomb_api_key:
            return traces_url(self.honeycomb_api_url)
        return None

    @property
    def console_spans(self) -> bool:
        """``OTEL_TRACES_EXPORTER`` names ``console``: finished spans are printed to stdout."""
        return "console" in self.otel_traces_exporter

    @property
    def otlp_headers(self) -> dict[str, str]:
        """Exporter headers: ``OTEL_EXPORTER_OTLP_TRACES_HEADERS`` if set, else
        ``OTEL_EXPORTER_OTLP_HEADERS`` (as the SDK chooses), plus Honeycomb's team header."""
        raw = self.otel_exporter_otlp_traces_headers or self.otel_exporter_otlp_headers
        headers = parse_headers(raw.get_secret_value() if raw else None)
        if self.honeycomb_api_key and HONEYCOMB_TEAM_HEADER not in headers:
            headers[HONEYCOMB_TEAM_HEADER] = self.honeycomb_api_key.get_secret_value()
        return headers

    @property
    def http_semconv(self) -> Literal["stable", "dup"]:
        """``OTEL_SEMCONV_STABILITY_OPT_IN``: ``http/dup`` adds the old HTTP attribute names;
        otherwise (``http``, unset, or other categories only) the stable ones alone."""
        opted = {item.strip().lower() for item in self.otel_semconv_stability_opt_in}
        return "dup" if "http/dup" in opted else "stable"

    @property
    def resource_attributes(self) -> dict[str, str]:
        return parse_resource_attributes(self.otel_resource_attributes)

    @property
    def service_name(self) -> str:
        """``OTEL_SERVICE_NAME``, else ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``, else
        ``chatops-bot``: the resource's ``service.name`` and the Honeycomb dataset."""
        if self.otel_service_name:
            return self.otel_service_name
        return self.resource_attributes.get("service.name", "").strip() or DEFAULT_SERVICE_NAME

    @property
    def webhooks_apart(self) -> bool:
        """Whether webhooks are served on ``WEBHOOK_PORT`` rather than beside ``/healthz``."""
        return self.webhook_port is not None and self.webhook_port != self.health_port

    @property
    def trace_links(self) -> TraceLinks | None:
        """Where a trace id links to, or None (no ``HONEYCOMB_TEAM``): bare ids then."""
        from telemetry.trace_links import TraceLinks

        if not self.honeycomb_team:
            return None
        return TraceLinks(
            self.honeycomb_team, self.honeycomb_environment, str(self.honeycomb_api_url)
        )

    @property
    def console_history_path(self) -> Path:
        """The console's prompt history: ``$XDG_STATE_HOME/chatops/console_history``
        (``~/.local/state`` when unset), as the XDG base directories say."""
        base = self.xdg_state_home or Path.home() / ".local" / "state"
        return base / "chatops" / "console_history"

    @property
    def uses_custom_api(self) -> bool:
        return self.discord_api_base.rstrip("/") != DISCORD_API_BASE

    # span store (issue 6)
    span_store_max_age: timedelta = Field(
        default=timedelta(days=7), ge=timedelta(minutes=1), le=timedelta(days=366)
    )
    span_store_max_bytes: int = Field(default=256 * 1024 * 1024, ge=1024 * 1024, le=64 * 1024**3)
    # Tail sampling (telemetry/span_pipeline.py): failures and slow messages always kept,
    # ok ones 1 in N with SampleRate=N. 1 keeps every trace.
    tail_sample_ok_one_in: int = Field(default=1, ge=1, le=1_000_000)
    tail_sample_slow_ms: float = Field(default=1000.0, gt=0)
    # The OpenTelemetry SDK's batch settings, as the trace pipeline reads them.
    otel_bsp_schedule_delay: int = Field(default=1000, ge=10, le=3_600_000)
    otel_bsp_max_queue_size: int = Field(default=8192, ge=64, le=1_000_000)
    otel_bsp_max_export_batch_size: int = Field(default=512, ge=1, le=1_000_000)
    honeycomb_api_url: WebUrl = HONEYCOMB_ENDPOINT
    honeycomb_config_key: SecretStr | None = None

    @field_validator(
        "span_store_max_age", "buildkite_backfill", "circleci_poll_lookback", mode="before"
    )
    @classmethod
    def _parse_age(cls, value: object) -> object:
        # "7d" reads better in an environment file than ISO 8601's "P7D"; both work.
        if isinstance(value, str) and value.strip()[-1:].isalpha() and value[:1] != "P":
            return parse_timespan(value)
        return value

    # azure (issues 5, 7)
    # Resource Manager and its token authority: the public cloud by default; sovereign
    # clouds set both (e.g. https://management.usgovcloudapi.net and
    # https://login.microsoftonline.us). The token scope is ``<endpoint>/.default``.
    azure_arm_endpoint: WebUrl = "https://management.azure.com"
    azure_authority_host: OptionalWebUrl = None
    # One ARM request, the SDK's own retries included (429 waits for Retry-After).
    azure_call_timeout_s: float = Field(default=30.0, gt=0, le=600)
    azure_retry_total: int = Field(default=3, ge=0, le=10)
    # The bounded wait for a long-running operation (start, restart, deploy).
    azure_operation_timeout_s: float = Field(default=300.0, gt=0, le=3600)
    # How often to poll an operation when ARM sends no Retry-After.
    azure_poll_interval_s: float = Field(default=5.0, gt=0, le=60)
    azure_confirm_timeout_s: float = Field(default=30.0, gt=0, le=600)
    azure_logs_tail: int = Field(default=100, ge=1, le=10_000)

    # the ops loop (issue 19, docs/ops-loop.md)
    # Where every change made through the bot is posted; unset: no audit posts.
    audit_channel_id: int | None = Field(default=None, gt=0)
    # At most this many audit posts a minute (after a burst of 3); entries that arrive
    # meanwhile are coalesced, up to 10 per post; beyond 200 waiting, dropped and counted.
    audit_posts_per_minute: float = Field(default=20.0, gt=0, le=600)
    # Container watch: poll the configured groups this often and post transitions to
    # ALERT_CHANNEL_ID; unset: no watch.
    azure_watch_interval_s: float | None = Field(default=None, gt=0, le=86_400)
    alert_channel_id: int | None = Field(default=None, gt=0)
    # Honeycomb alerts into Discord: the shared secret of the webhook recipient (checked on
    # every POST /hooks/honeycomb), the public URL Honeycomb posts to (for
    # ``chatops honeycomb apply``), and where accepted delivery ids are kept (replays).
    honeycomb_webhook_secret: SecretStr | None = None
    honeycomb_alert_webhook_url: OptionalWebUrl = None
    honeycomb_hook_state_db: Path = Path(".chatops/honeycomb-hooks.db")
    # Deploy before/after (needs the span store): the window compared on each side of a
    # deploy marker, how often to look for markers whose window has passed, the
    # regression threshold (p95 up by this share), and where verdicts are kept (unset:
    # ``deploy-reviews.db`` beside the span store).
    deploy_review_window_s: float = Field(default=900.0, ge=1, le=86_400)
    deploy_review_poll_s: float = Field(default=30.0, gt=0, le=3600)
    deploy_regression_pct: float = Field(default=25.0, gt=0, le=10_000)
    deploy_review_state_db: Path | None = None
    # A Honeycomb key allowed to run queries (Query Data API) and read markers: deploy
    # before/after then reads Honeycomb instead of the span store.
    honeycomb_query_key: SecretStr | None = None


def telemetry_config(settings: Settings) -> TelemetryConfig:
    """Tracing configuration from ``Settings`` (``chatops run`` and the console)."""
    from telemetry.setup import OtlpTls, TelemetryConfig
    from telemetry.span_pipeline import Batching, TailSampler

    return TelemetryConfig(
        service_name=settings.service_name,
        resource_attributes=settings.resource_attributes,
        environment=settings.deployment_environment,
        otlp_traces_endpoint=settings.otlp_traces_url,
        console=settings.console_spans,
        otlp_headers=settings.otlp_headers,
        span_store=settings.span_store_path,
        span_store_max_age=settings.span_store_max_age,
        span_store_max_bytes=settings.span_store_max_bytes,
        sampler=TailSampler(settings.tail_sample_ok_one_in, settings.tail_sample_slow_ms),
        batch=Batching(
            schedule_delay_s=settings.otel_bsp_schedule_delay / 1000,
            max_pending=settings.otel_bsp_max_queue_size,
            flush_at=settings.otel_bsp_max_export_batch_size,
        ),
        otlp_tls=OtlpTls(
            settings.otlp_certificate,
            settings.otlp_client_key,
            settings.otlp_client_certificate,
        ),
        otlp_via_proxy=bool(settings.https_proxy or settings.http_proxy),
        http_semconv=settings.http_semconv,
    )


def flags_config(settings: Settings) -> FlagsConfig:
    """The feature-flag source ``Settings`` describe (bot start-up and ``chatops flags eval``)."""
    from commands.toolkit.flags import FlagsConfig

    return FlagsConfig(
        provider=settings.flags_provider,
        file=settings.flags_file,
        host=settings.flagd_host,
        port=settings.flagd_port,
        tls=settings.flagd_tls,
        poll_ms=settings.flags_poll_ms,
    )


def check_bot_requirements(settings: Settings) -> None:
    """What the bot itself needs to start (``run``, ``console``, ``sync-commands``).

    Checked only by the verbs that start the bot: ``ci step`` in a pipeline that
    exports ``AZURE_SUBSCRIPTION_ID`` for its own tools must not fail on it.
    """
    if settings.azure_subscription_id and not settings.azure_resource_group:
        raise ConfigError(
            "AZURE_SUBSCRIPTION_ID is set but AZURE_RESOURCE_GROUP is not "
            "(the resource groups !aci may manage)"
        )
    # A watch with nowhere to post would poll and say nothing: refuse it at start.
    if settings.azure_watch_interval_s is not None and settings.alert_channel_id is None:
        raise ConfigError(
            "AZURE_WATCH_INTERVAL_S is set but ALERT_CHANNEL_ID is not "
            "(the channel the container watch posts to)"
        )
    # The default file is optional; one named on purpose that is not there is a mistake.
    if "commands_file" in settings.model_fields_set and not settings.commands_file.exists():
        raise ConfigError(f"COMMANDS_FILE {settings.commands_file} does not exist")


def load_settings(**overrides: object) -> Settings:
    """Build ``Settings``; any invalid value becomes one ``ConfigError`` line."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
        message = first["msg"].removeprefix("Value error, ")
        raise ConfigError(f"invalid {name}: {message}") from None
