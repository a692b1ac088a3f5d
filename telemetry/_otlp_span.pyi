"""The compiled span encoder (telemetry/_otlp_span.c), used through ``otlp_wire``."""

from collections.abc import Callable
from typing import Any

def encode_span(span: Any, /) -> bytes: ...
def configure(
    fallback: Callable[[Any], bytes],
    lean_span_type: type,
    span_kinds: tuple[Any, ...],
    status_codes: tuple[Any, ...],
    empty_trace_state: Any,
    /,
) -> None: ...
