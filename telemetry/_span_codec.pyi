"""Spans as OTLP bytes and store rows in C (telemetry/_span_codec.c), used through
``otlp_wire`` and ``store``."""

from collections.abc import Callable
from typing import Any

def encode_span(span: Any, /) -> bytes: ...
def set_encode_fallback(encode: Callable[[Any], bytes], /) -> None: ...
def configure(
    lean_span_type: type,
    span_kinds: tuple[Any, ...],
    status_codes: tuple[Any, ...],
    empty_trace_state: Any,
    /,
) -> None: ...
def store_row(span: Any, /) -> tuple[Any, ...]: ...
def configure_store(
    fallback: Callable[[Any], tuple[Any, ...]],
    service_of: Callable[[Any], str | None],
    encode_json_str: Callable[[str], str],
    kind_names: tuple[str, ...],
    code_names: tuple[str, ...],
    command_key: str,
    author_key: str,
    guild_key: str,
    outcome_key: str,
    pipeline_result_key: str,
    /,
) -> None: ...
