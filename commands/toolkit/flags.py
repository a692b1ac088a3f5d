"""Feature flags: one OpenFeature client over a flagd-format source, each evaluation a span.

The bot asks OpenFeature, never flagd directly, so the source of flags is a
configuration choice (``FLAGS_PROVIDER``): ``file`` evaluates a flagd-format file
in-process with flagd's own evaluation core (``commands.toolkit.flag_file_provider``:
no grpc, no watcher thread; the file's modification time is checked when a flag is
evaluated, at most once per ``FLAGS_POLL_MS``, so an edit is picked up without a
restart), ``rpc`` and ``in-process`` talk to a flagd server through flagd's
provider (imported only then), ``none`` evaluates nothing. The OpenFeature API is
process-global; the bot binds its provider to its own domain so nothing else in
the process can swap it.

Each evaluation is wrapped in a ``feature_flag.evaluate <key>`` span, because
OpenTelemetry's OpenFeature hook only adds an event to the current span: no
duration, and nothing to query "how long did flag checks take". A flag whose
``metadata`` says ``"sensitive": true`` never has its value on a span.

A broken or missing file must not stop the bot, nor flood its log: the file
provider reports a file once per change (it logs nothing itself), and
``FlagSourceMonitor`` says once why the file is unusable (and once when it is good
again). It hears the file provider synchronously, so the evaluation that finds a
broken edit already fails closed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TypeVar

from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason
from openfeature.provider import FeatureProvider
from openfeature.provider.no_op_provider import NoOpProvider
from opentelemetry.util.types import AttributeValue

from telemetry import schema
from telemetry.schema import truncate
from telemetry.tracer import module_tracer

log = logging.getLogger(__name__)
tracer = module_tracer(__name__)

DOMAIN = "chatops"
ProviderKind = Literal["file", "rpc", "in-process", "none"]
SENSITIVE = "sensitive"
HIDDEN = "hidden"
VALUE_MAX_CHARS = 256

T = TypeVar("T", bool, str, int, float)


@dataclass(frozen=True)
class FlagsConfig:
    """Where flags come from; built from ``Settings`` by the bot, never from the environment."""

    provider: ProviderKind = "file"
    file: Path = Path("flags.json")
    host: str = "localhost"
    port: int | None = None
    tls: bool = False
    # The file provider looks at the file's modification time at most this often,
    # when a flag is evaluated.
    poll_ms: int = 500


def build_provider(config: FlagsConfig) -> FeatureProvider:
    """The OpenFeature provider for ``config``.

    A file is evaluated by ``FlagFileProvider`` (flagd's evaluation core, without
    flagd's provider and the grpc it imports); flagd's provider is imported only
    for a flagd server.
    """
    if config.provider == "none":
        return NoOpProvider()
    if config.provider == "file":
        from commands.toolkit.flag_file_provider import FlagFileProvider

        return FlagFileProvider(config.file, poll_ms=config.poll_ms)
    from openfeature.contrib.provider.flagd import FlagdProvider
    from openfeature.contrib.provider.flagd.config import ResolverType

    resolver = ResolverType.RPC if config.provider == "rpc" else ResolverType.IN_PROCESS
    return FlagdProvider(
        resolver_type=resolver,
        host=config.host,
        port=config.port,
        tls=config.tls,
        # Explicit, so FLAGD_OFFLINE_FLAG_SOURCE_PATH in the environment cannot turn
        # a remote configuration back into file mode.
        offline_flag_source_path="",
    )


class FlagSourceMonitor:
    """Logs once why flags are unusable, and once when they are usable again.

    Events arrive on other threads (a flagd server's stream, the SDK's handler
    threads; the file provider's in the evaluating thread), so the last reported
    state is kept under a lock and a message is logged only when it changes.
    """

    def __init__(self, config: FlagsConfig) -> None:
        self.config = config
        self._lock = threading.Lock()
        self._reported: str | None = None
        self.problem: str | None = None
        # True while the source cannot be loaded. flagd would keep answering from the
        # last good file; the bot fails closed instead (``evaluate``), so a broken edit
        # that was meant to revoke someone's access cannot leave it in place.
        self.unusable = False

    def attach(self, client: OpenFeatureClient) -> None:
        """Hear a flagd server's provider through the client's (asynchronous) event handlers."""
        for event in (
            ProviderEvent.PROVIDER_READY,
            ProviderEvent.PROVIDER_ERROR,
            ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
            ProviderEvent.PROVIDER_STALE,
        ):
            client.add_handler(event, self.on_event)

    def on_event(self, details: EventDetails) -> None:
        problem, unusable = self.diagnose(details)
        with self._lock:
            previous, self._reported = self._reported, problem
            self.problem = problem
            self.unusable = unusable
        if problem == previous:
            return
        if problem is not None:
            log.warning("%s", problem)
        elif previous is not None:
            log.warning("feature flags usable again (%s)", self.source)

    @property
    def source(self) -> str:
        if self.config.provider == "file":
            return str(self.config.file)
        port = self.config.port or "default port"
        return f"flagd ({self.config.provider}) at {self.config.host}:{port}"

    def diagnose(self, details: EventDetails) -> tuple[str | None, bool]:
        """What is wrong with the flag source, in one line (or None), and whether it is unusable.

        For a file the reason is the first error ``chatops flags check`` would
        print (with line and column), which says more than the provider's event.
        """
        failed = details.error_code is not None
        first_error: str | None = None
        if self.config.provider == "file":
            from commands.toolkit.flag_file import check_file

            report = check_file(self.config.file)
            first_error = report.errors[0].text if report.errors else None
            failed = failed or not report.loadable
        if failed:
            why = first_error or details.message or "unknown error"
            return (
                f"feature flags unusable ({self.source}: {why}): "
                "permission flags deny, feature flags use their code defaults"
            ), True
        if first_error is not None:
            return (
                f"feature flags loaded with problems ({self.source}: {first_error}): "
                "the flags concerned fall back to their code defaults"
            ), False
        return None, False


@dataclass
class _Active:
    config: FlagsConfig
    client: OpenFeatureClient
    provider_name: str
    blocking: bool
    monitor: FlagSourceMonitor
    # A local file the bot cannot load means "no flags", not "the previous file".
    fail_closed: bool
    # Looks for an edit of the file (at most once per poll interval); None for flagd.
    refresh: Callable[[], None] | None = None
    # Registers a listener with the file provider (synchronous events); None for flagd.
    listen: Callable[[Callable[[EventDetails], None]], None] | None = None


_active: _Active | None = None


def start_flags(config: FlagsConfig, *, wait: bool = False) -> FlagSourceMonitor:
    """Bind the configured provider to the bot's domain; never raises for a bad source.

    A file provider loads synchronously, so the first message already sees the
    flags; a remote one connects in the background unless ``wait`` (until then,
    flags use their defaults): the bot must not wait on flagd to come up.
    """
    global _active
    provider = build_provider(config)
    client = api.get_client(DOMAIN)
    monitor = FlagSourceMonitor(config)
    refresh: Callable[[], None] | None = None
    listen: Callable[[Callable[[EventDetails], None]], None] | None = None
    if config.provider == "file":
        from commands.toolkit.flag_file_provider import FlagFileProvider

        assert isinstance(provider, FlagFileProvider)
        # In order, and before the evaluation that noticed a change goes on.
        provider.add_listener(monitor.on_event)
        refresh = provider.refresh
        listen = provider.add_listener
    else:
        monitor.attach(client)
    _active = _Active(
        config=config,
        client=client,
        provider_name=provider.get_metadata().name,
        blocking=config.provider == "rpc",
        monitor=monitor,
        fail_closed=config.provider == "file",
        refresh=refresh,
        listen=listen,
    )
    if config.provider == "file" or wait:
        # A failure is reported by the monitor (PROVIDER_ERROR); the provider looks
        # at the file again when a flag is evaluated, and the flags load as soon as
        # the file is good.
        with contextlib.suppress(Exception):
            api.set_provider_and_wait(provider, domain=DOMAIN)
    else:
        api.set_provider(provider, domain=DOMAIN)
    return monitor


def shutdown_flags() -> None:
    """Stop the provider (a flagd stream; the file provider stops looking) and forget it."""
    global _active
    _active = None
    api.shutdown()


def on_flags_changed(callback: Callable[[list[str]], None]) -> bool:
    """Call ``callback(keys)`` after every reload that changed flag definitions.

    Only changes after this call are reported (start-up's first load is not a
    change). The callback runs in whichever thread found the change (the
    evaluating one for a file, the SDK's for flagd): it must hand over, not work.
    False when no flags are active.
    """
    active = _active
    if active is None:
        return False

    def listener(details: EventDetails) -> None:
        if details.flags_changed and details.error_code is None:
            callback(list(details.flags_changed))

    if active.listen is not None:
        active.listen(listener)
    else:
        active.client.add_handler(ProviderEvent.PROVIDER_CONFIGURATION_CHANGED, listener)
    return True


def flags_active() -> bool:
    return _active is not None


def evaluate(key: str, default: T, context: EvaluationContext) -> FlagEvaluationDetails[T]:
    """Evaluate ``key`` inside a ``feature_flag.evaluate`` span; never raises.

    Any failure (no provider, unknown flag, broken file, wrong type) yields
    ``default`` with reason ERROR, which is what makes permission flags fail closed.
    """
    active = _active
    provider_name = active.provider_name if active else "none"
    with tracer.start_as_current_span(schema.FLAG_SPAN_PREFIX + key) as span:
        details = _evaluate(active, key, default, context)
        span.set_attributes(span_attributes(details, provider_name, context))
        return details


def evaluate_untraced(key: str, default: T, context: EvaluationContext) -> FlagEvaluationDetails[T]:
    """``evaluate`` without its span: what a flag says about someone outside any message
    (``chatops console`` shows a persona's flags), so no trace of its own is recorded."""
    return _evaluate(_active, key, default, context)


def _evaluate(
    active: _Active | None, key: str, default: T, context: EvaluationContext
) -> FlagEvaluationDetails[T]:
    client = active.client if active else api.get_client(DOMAIN)
    if active is not None and active.refresh is not None:
        # Before the fail-closed check: a broken edit denies from this evaluation on.
        active.refresh()
    if active is not None and active.fail_closed and active.monitor.unusable:
        return FlagEvaluationDetails(
            flag_key=key,
            value=default,
            reason=Reason.ERROR,
            error_code=ErrorCode.PROVIDER_NOT_READY,
            error_message=active.monitor.problem,
        )
    return _resolve(client, key, default, context)


async def evaluate_async(
    key: str, default: T, context: EvaluationContext
) -> FlagEvaluationDetails[T]:
    """``evaluate``, off the event loop when the provider makes a network call per flag."""
    active = _active
    if active is not None and active.blocking:
        return await asyncio.to_thread(evaluate, key, default, context)
    return evaluate(key, default, context)


def _resolve(
    client: OpenFeatureClient, key: str, default: T, context: EvaluationContext
) -> FlagEvaluationDetails[T]:
    details: FlagEvaluationDetails[Any]
    if isinstance(default, bool):
        details = client.get_boolean_details(key, default, context)
    elif isinstance(default, str):
        details = client.get_string_details(key, default, context)
    elif isinstance(default, int):
        details = client.get_integer_details(key, default, context)
    else:
        details = client.get_float_details(key, default, context)
    return details


def is_sensitive(metadata: Mapping[str, Any]) -> bool:
    return metadata.get(SENSITIVE) is True


def is_hidden(metadata: Mapping[str, Any]) -> bool:
    return metadata.get(HIDDEN) is True


def span_attributes(
    details: FlagEvaluationDetails[Any], provider_name: str, context: EvaluationContext
) -> dict[str, AttributeValue]:
    """The OTel feature-flag attributes of one evaluation (no value for a sensitive flag)."""
    attributes: dict[str, AttributeValue] = {
        schema.FLAG_KEY: details.flag_key,
        schema.FLAG_PROVIDER: provider_name,
        schema.FLAG_REASON: str(details.reason or "unknown").lower(),
    }
    if context.targeting_key:
        attributes[schema.FLAG_CONTEXT_ID] = context.targeting_key
    if details.variant is not None:
        attributes[schema.FLAG_VARIANT] = details.variant
    if not is_sensitive(details.flag_metadata):
        attributes[schema.FLAG_VALUE] = _attribute_value(details.value)
    if details.error_code is not None:
        attributes[schema.FLAG_ERROR_TYPE] = str(details.error_code).lower()
        if details.error_message:
            attributes[schema.FLAG_ERROR_MESSAGE] = truncate(
                details.error_message, schema.RESPONSE_MAX_CHARS
            )
    return attributes


def _attribute_value(value: object) -> AttributeValue:
    if isinstance(value, bool | str | int | float):
        return value
    return truncate(json.dumps(value, default=str, sort_keys=True), VALUE_MAX_CHARS)
