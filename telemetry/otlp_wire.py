"""OTLP trace export requests written straight to protobuf wire bytes.

The SDK's encoder (``opentelemetry.exporter.otlp.proto.common._internal.trace_encoder``)
builds a tree of protobuf message objects per span and groups spans in a dict
keyed by ``Resource``, whose ``__hash__`` JSON-encodes the resource for every
span; together that is 64–80 µs a span. This module writes the bytes of the same
``ExportTraceServiceRequest`` directly: spans are appended field by field to a
``bytearray`` with precomputed tags, and the encoded resource and scope are
cached per object, so a span costs a fraction of that.

The output decodes to a message equal (``==``) to what the SDK's
``encode_spans(spans).SerializeToString()`` decodes to, including its quirks
(see ``tests/unit/test_otlp_wire.py``): empty ``status``, ``resource`` and
``scope`` sub-messages are present rather than absent, a ``None`` attribute
value is an empty ``AnyValue``, an attribute the SDK cannot encode (an int
outside int64, an unknown type, a non-str key) is logged and left out, span and
link ``flags`` carry only the has-is-remote / is-remote bits (not the trace
flags), and links carry no ``trace_state``. Fields are written in field-number
order, as the protobuf runtime does, so in practice the bytes are identical too.

Use:

- ``encode_request(spans)`` for a batch of finished spans, like the SDK;
- ``encode_span(span)`` to encode one span as it ends, and a ``RequestBuilder``
  (``add_encoded``/``build``) or ``request_from_encoded`` to join already
  encoded spans into one request later: joining costs a length prefix per span.

Resources and instrumentation scopes are treated as immutable, as the SDK
treats them: an object's encoding is cached by identity the first time it is
seen. Spans are grouped exactly as the SDK groups them (by ``Resource``
equality, then by ``InstrumentationScope`` equality, in order of first
appearance), but equality is decided once per object, not once per span.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any, Final, Protocol

from opentelemetry.attributes import BoundedAttributes
from opentelemetry.trace import SpanKind, StatusCode

from telemetry import _span_codec

__all__ = [
    "InstrumentationScopeLike",
    "ReadableSpanLike",
    "RequestBuilder",
    "ResourceLike",
    "encode_request",
    "encode_span",
    "encode_span_python",
    "request_from_encoded",
]

_logger = logging.getLogger(__name__)


# --- the shapes read (duck-typed ``opentelemetry.sdk.trace.ReadableSpan``) ------------------


class SpanContextLike(Protocol):
    @property
    def trace_id(self) -> int: ...
    @property
    def span_id(self) -> int: ...
    @property
    def is_remote(self) -> bool: ...
    @property
    def trace_state(self) -> Mapping[str, str] | None: ...


class StatusLike(Protocol):
    @property
    def status_code(self) -> Any: ...  # an ``opentelemetry.trace.StatusCode``
    @property
    def description(self) -> str | None: ...


class EventLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def timestamp(self) -> int | None: ...
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...
    @property
    def dropped_attributes(self) -> int: ...


class LinkLike(Protocol):
    @property
    def context(self) -> SpanContextLike: ...
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...
    @property
    def dropped_attributes(self) -> int: ...


class ResourceLike(Protocol):
    @property
    def attributes(self) -> Mapping[str, Any]: ...
    @property
    def schema_url(self) -> str: ...


class InstrumentationScopeLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def version(self) -> str | None: ...
    @property
    def schema_url(self) -> str | None: ...
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...


class ReadableSpanLike(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def context(self) -> SpanContextLike | None: ...
    @property
    def parent(self) -> SpanContextLike | None: ...
    @property
    def kind(self) -> SpanKind: ...
    @property
    def start_time(self) -> int | None: ...
    @property
    def end_time(self) -> int | None: ...
    @property
    def attributes(self) -> Mapping[str, Any] | None: ...
    @property
    def events(self) -> Sequence[EventLike]: ...
    @property
    def links(self) -> Sequence[LinkLike]: ...
    @property
    def status(self) -> StatusLike: ...
    @property
    def resource(self) -> ResourceLike: ...
    @property
    def instrumentation_scope(self) -> InstrumentationScopeLike | None: ...
    @property
    def dropped_attributes(self) -> int: ...
    @property
    def dropped_events(self) -> int: ...
    @property
    def dropped_links(self) -> int: ...


# --- wire primitives ---------------------------------------------------------------------------

_VARINT: Final = 0
_I64: Final = 1
_LEN: Final = 2
_I32: Final = 5


def _varint(n: int) -> bytes:
    """An unsigned varint; a negative int as its 64-bit two's complement (10 bytes)."""
    if 0 <= n < 0x80:
        return _SMALL[n]
    n &= 0xFFFF_FFFF_FFFF_FFFF
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_SMALL: Final = tuple(bytes((i,)) for i in range(0x80))


def _tag(number: int, wire_type: int) -> bytes:
    return _varint(number << 3 | wire_type)


# Field numbers, from opentelemetry/proto/**.proto; tests/unit/test_otlp_wire.py checks each
# against the generated descriptors.
FIELDS: Final[dict[str, dict[str, int]]] = {
    "ExportTraceServiceRequest": {"resource_spans": 1},
    "ResourceSpans": {"resource": 1, "scope_spans": 2, "schema_url": 3},
    "ScopeSpans": {"scope": 1, "spans": 2, "schema_url": 3},
    "Resource": {"attributes": 1},
    "InstrumentationScope": {"name": 1, "version": 2, "attributes": 3},
    "Span": {
        "trace_id": 1,
        "span_id": 2,
        "trace_state": 3,
        "parent_span_id": 4,
        "name": 5,
        "kind": 6,
        "start_time_unix_nano": 7,
        "end_time_unix_nano": 8,
        "attributes": 9,
        "dropped_attributes_count": 10,
        "events": 11,
        "dropped_events_count": 12,
        "links": 13,
        "dropped_links_count": 14,
        "status": 15,
        "flags": 16,
    },
    "Event": {"time_unix_nano": 1, "name": 2, "attributes": 3, "dropped_attributes_count": 4},
    "Link": {
        "trace_id": 1,
        "span_id": 2,
        "attributes": 4,
        "dropped_attributes_count": 5,
        "flags": 6,
    },
    "Status": {"message": 2, "code": 3},
    "KeyValue": {"key": 1, "value": 2},
    "AnyValue": {
        "string_value": 1,
        "bool_value": 2,
        "int_value": 3,
        "double_value": 4,
        "array_value": 5,
        "kvlist_value": 6,
        "bytes_value": 7,
    },
    "ArrayValue": {"values": 1},
    "KeyValueList": {"values": 1},
}

_F = FIELDS

_REQ_RESOURCE_SPANS: Final = _tag(_F["ExportTraceServiceRequest"]["resource_spans"], _LEN)
_RS_RESOURCE: Final = _tag(_F["ResourceSpans"]["resource"], _LEN)
_RS_SCOPE_SPANS: Final = _tag(_F["ResourceSpans"]["scope_spans"], _LEN)
_RS_SCHEMA_URL: Final = _tag(_F["ResourceSpans"]["schema_url"], _LEN)
_SS_SCOPE: Final = _tag(_F["ScopeSpans"]["scope"], _LEN)
_SS_SPANS: Final = _tag(_F["ScopeSpans"]["spans"], _LEN)
_SS_SCHEMA_URL: Final = _tag(_F["ScopeSpans"]["schema_url"], _LEN)
_RES_ATTRIBUTES: Final = _tag(_F["Resource"]["attributes"], _LEN)
_SCOPE_NAME: Final = _tag(_F["InstrumentationScope"]["name"], _LEN)
_SCOPE_VERSION: Final = _tag(_F["InstrumentationScope"]["version"], _LEN)
_SCOPE_ATTRIBUTES: Final = _tag(_F["InstrumentationScope"]["attributes"], _LEN)

_S = _F["Span"]
_SPAN_TRACE_ID: Final = _tag(_S["trace_id"], _LEN) + b"\x10"  # always 16 bytes
_SPAN_SPAN_ID: Final = _tag(_S["span_id"], _LEN) + b"\x08"  # always 8 bytes
_SPAN_TRACE_STATE: Final = _tag(_S["trace_state"], _LEN)
_SPAN_PARENT_SPAN_ID: Final = _tag(_S["parent_span_id"], _LEN) + b"\x08"
_SPAN_NAME: Final = _tag(_S["name"], _LEN)
_SPAN_START: Final = _tag(_S["start_time_unix_nano"], _I64)
_SPAN_END: Final = _tag(_S["end_time_unix_nano"], _I64)
_SPAN_ATTRIBUTES: Final = _tag(_S["attributes"], _LEN)
_SPAN_DROPPED_ATTRIBUTES: Final = _tag(_S["dropped_attributes_count"], _VARINT)
_SPAN_EVENTS: Final = _tag(_S["events"], _LEN)
_SPAN_DROPPED_EVENTS: Final = _tag(_S["dropped_events_count"], _VARINT)
_SPAN_LINKS: Final = _tag(_S["links"], _LEN)
_SPAN_DROPPED_LINKS: Final = _tag(_S["dropped_links_count"], _VARINT)
_SPAN_STATUS: Final = _tag(_S["status"], _LEN)
_SPAN_FLAGS: Final = _tag(_S["flags"], _I32)

_EVENT_TIME: Final = _tag(_F["Event"]["time_unix_nano"], _I64)
_EVENT_NAME: Final = _tag(_F["Event"]["name"], _LEN)
_EVENT_ATTRIBUTES: Final = _tag(_F["Event"]["attributes"], _LEN)
_EVENT_DROPPED_ATTRIBUTES: Final = _tag(_F["Event"]["dropped_attributes_count"], _VARINT)

_LINK_TRACE_ID: Final = _tag(_F["Link"]["trace_id"], _LEN) + b"\x10"
_LINK_SPAN_ID: Final = _tag(_F["Link"]["span_id"], _LEN) + b"\x08"
_LINK_ATTRIBUTES: Final = _tag(_F["Link"]["attributes"], _LEN)
_LINK_DROPPED_ATTRIBUTES: Final = _tag(_F["Link"]["dropped_attributes_count"], _VARINT)
_LINK_FLAGS: Final = _tag(_F["Link"]["flags"], _I32)

_STATUS_MESSAGE: Final = _tag(_F["Status"]["message"], _LEN)
_STATUS_CODE: Final = _tag(_F["Status"]["code"], _VARINT)

_KV_KEY: Final = _tag(_F["KeyValue"]["key"], _LEN)
_KV_VALUE: Final = _tag(_F["KeyValue"]["value"], _LEN)
_A = _F["AnyValue"]
_AV_STRING: Final = _tag(_A["string_value"], _LEN)
_AV_TRUE: Final = _tag(_A["bool_value"], _VARINT) + b"\x01"
_AV_FALSE: Final = _tag(_A["bool_value"], _VARINT) + b"\x00"
_AV_INT: Final = _tag(_A["int_value"], _VARINT)
_AV_DOUBLE: Final = _tag(_A["double_value"], _I64)
_AV_ARRAY: Final = _tag(_A["array_value"], _LEN)
_AV_KVLIST: Final = _tag(_A["kvlist_value"], _LEN)
_AV_BYTES: Final = _tag(_A["bytes_value"], _LEN)
_ARRAY_VALUES: Final = _tag(_F["ArrayValue"]["values"], _LEN)
_KVLIST_VALUES: Final = _tag(_F["KeyValueList"]["values"], _LEN)

# SpanFlags: bit 8 "has is_remote", bit 9 "is_remote". Like the SDK (``_span_flags``), the
# low 8 bits (W3C trace flags) are not written.
_FLAGS_HAS_IS_REMOTE: Final = 0x100
_FLAGS_IS_REMOTE: Final = 0x200
_PACK_U32: Final = struct.Struct("<I").pack
_PACK_U64: Final = struct.Struct("<Q").pack
_PACK_DOUBLE: Final = struct.Struct("<d").pack
_FLAGS_LOCAL: Final = _SPAN_FLAGS + _PACK_U32(_FLAGS_HAS_IS_REMOTE)
_FLAGS_REMOTE: Final = _SPAN_FLAGS + _PACK_U32(_FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)
_LINK_FLAGS_LOCAL: Final = _LINK_FLAGS + _PACK_U32(_FLAGS_HAS_IS_REMOTE)
_LINK_FLAGS_REMOTE: Final = _LINK_FLAGS + _PACK_U32(_FLAGS_HAS_IS_REMOTE | _FLAGS_IS_REMOTE)

# Span.SpanKind is the API's SpanKind plus one (0 is SPAN_KIND_UNSPECIFIED).
_KIND: Final[dict[SpanKind, bytes]] = {
    kind: _tag(_S["kind"], _VARINT) + _varint(kind.value + 1) for kind in SpanKind
}
_KIND_BY_ID: Final = {id(kind): field for kind, field in _KIND.items()}

_INT64_MIN: Final = -(1 << 63)
_INT64_MAX: Final = (1 << 63) - 1


def _length(n: int) -> bytes:
    """The varint length prefix of an ``n``-byte length-delimited field."""
    return _SMALL[n] if n < 0x80 else _varint(n)


def _sized(body: bytes | bytearray) -> bytes:
    """``body`` preceded by its length, the payload of a length-delimited field."""
    n = len(body)
    return (_SMALL[n] if n < 0x80 else _varint(n)) + body


def _str_field(tag: bytes, value: str) -> bytes:
    raw = value.encode()
    n = len(raw)
    return tag + (_SMALL[n] if n < 0x80 else _varint(n)) + raw


# --- attribute values (mirrors ``_encode_value`` / ``_encode_attributes``) -----------------------


def _any_value(value: Any) -> bytes:
    """The body of an ``AnyValue``, in the SDK's order of type checks."""
    if value is None:
        return b""
    if isinstance(value, bool):
        return _AV_TRUE if value else _AV_FALSE
    if isinstance(value, str):
        return _str_field(_AV_STRING, value)
    if isinstance(value, int):
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"Value out of range: {value}")
        return _AV_INT + _varint(value)
    if isinstance(value, float):
        return _AV_DOUBLE + _PACK_DOUBLE(value)
    if isinstance(value, bytes):
        return _AV_BYTES + _sized(value)
    if isinstance(value, Sequence):
        array = bytearray()
        for item in value:
            array += _ARRAY_VALUES
            array += _sized(_any_value(item))
        return _AV_ARRAY + _sized(array)
    if isinstance(value, Mapping):
        kvlist = bytearray()
        for key, item in value.items():
            kvlist += _KVLIST_VALUES
            kvlist += _sized_key_value(str(key), item)
        return _AV_KVLIST + _sized(kvlist)
    raise Exception(f"Invalid type {type(value)} of value {value}")  # the SDK's words


_KEY_CACHE: dict[str, bytes] = {}
# sized KeyValues by (key, value); one dict per value type, as True == 1 == 1.0
_STR_CACHE: dict[tuple[str, str], bytes] = {}
_INT_CACHE: dict[tuple[str, int], bytes] = {}
_CACHE_LIMIT: Final = 1024
_CACHED_STR_MAX: Final = 64


def _key_field(key: str) -> bytes:
    field = _KEY_CACHE.get(key)
    if field is None:
        if not isinstance(key, str):
            raise TypeError(f"attribute key {key!r} is not a str")
        field = _str_field(_KV_KEY, key) if key else b""  # proto3 leaves "" out
        if len(_KEY_CACHE) >= _CACHE_LIMIT:
            _KEY_CACHE.clear()
        _KEY_CACHE[key] = field
    return field


def _sized_key_value(key: str, value: Any) -> bytes:
    """A ``KeyValue`` with its length prefix, ready to follow a field tag."""
    cls = type(value)
    if cls is str:
        cached = _STR_CACHE.get((key, value))
        if cached is not None:
            return cached
        raw = value.encode()
        n = len(raw)
        if n < 0x7E:  # the AnyValue (tag, length, bytes) fits a one-byte length too
            value_field = _KV_VALUE + _SMALL[n + 2] + _AV_STRING + _SMALL[n] + raw
        else:
            value_field = _KV_VALUE + _sized(_AV_STRING + _varint(n) + raw)
        kv = _sized(_key_field(key) + value_field)
        if n <= _CACHED_STR_MAX:
            if len(_STR_CACHE) >= _CACHE_LIMIT:
                _STR_CACHE.clear()
            _STR_CACHE[(key, value)] = kv
        return kv
    if cls is int:
        if not _INT64_MIN <= value <= _INT64_MAX:
            raise ValueError(f"Value out of range: {value}")
        kv = _sized(_key_field(key) + _KV_VALUE + _sized(_AV_INT + _varint(value)))
        if len(_INT_CACHE) >= _CACHE_LIMIT:
            _INT_CACHE.clear()
        _INT_CACHE[(key, value)] = kv
        return kv
    if cls is bool:
        body = _AV_TRUE if value else _AV_FALSE
    elif cls is float:
        body = _AV_DOUBLE + _PACK_DOUBLE(value)
    else:
        body = _any_value(value)
    return _sized(_key_field(key) + _KV_VALUE + _sized(body))


def _items(attributes: Mapping[str, Any]) -> Iterable[tuple[str, Any]]:
    """``attributes.items()``, quicker for the SDK's mappings.

    A span's attributes come as a ``MappingProxyType`` over ``BoundedAttributes``,
    whose ``items()`` runs Python code per item; its ``copy()`` is a dict copy.
    """
    cls = type(attributes)
    if cls is MappingProxyType or cls is BoundedAttributes:
        copied = attributes.copy()  # type: ignore[attr-defined]
        if type(copied) is dict:
            return copied.items()
    return attributes.items()


def _append_attributes(out: bytearray, tag: bytes, attributes: Mapping[str, Any] | None) -> None:
    if not attributes:
        return
    str_cache = _STR_CACHE
    int_cache = _INT_CACHE
    for key, value in _items(attributes):
        cls = type(value)
        if cls is str:
            kv = str_cache.get((key, value))
        elif cls is int:
            kv = int_cache.get((key, value))
        else:
            kv = None
        if kv is None:
            try:
                kv = _sized_key_value(key, value)
            except Exception as error:
                # the SDK logs and leaves the key out
                _logger.exception("Failed to encode key %s: %s", key, error)
                continue
        out += tag
        out += kv


def _attributes(tag: bytes, attributes: Mapping[str, Any] | None) -> bytes:
    out = bytearray()
    _append_attributes(out, tag, attributes)
    return bytes(out)


# --- spans (mirrors ``trace_encoder._encode_span``) --------------------------------------------

_STATUS_CACHE: dict[tuple[int, str | None], bytes] = {}
_STATUS_CODE_IDS: Final = frozenset(id(code) for code in StatusCode)


def _status_field(status: StatusLike) -> bytes:
    code = status.status_code
    description = status.description
    cacheable = id(code) in _STATUS_CODE_IDS and (
        description is None or len(description) <= _CACHED_STR_MAX
    )
    if cacheable:
        field = _STATUS_CACHE.get((id(code), description))
        if field is not None:
            return field
    body = bytearray()
    if description:
        body += _str_field(_STATUS_MESSAGE, description)
    number = code.value
    if number:
        body += _STATUS_CODE + _varint(number)
    field = _SPAN_STATUS + _sized(body)
    if cacheable:
        if len(_STATUS_CACHE) >= _CACHE_LIMIT:
            _STATUS_CACHE.clear()
        _STATUS_CACHE[(id(code), description)] = field
    return field


def _trace_state_field(trace_state: Mapping[str, str] | None) -> bytes:
    if not trace_state:
        return b""
    joined = ",".join([f"{key}={value}" for key, value in trace_state.items()])
    return _str_field(_SPAN_TRACE_STATE, joined) if joined else b""


def _u64(tag: bytes, value: int) -> bytes:
    return tag + _PACK_U64(value)


def encode_span_python(span: ReadableSpanLike) -> bytes:
    """The bytes of one ``opentelemetry.proto.trace.v1.Span`` message (no tag, no length).

    The reference encoder, and the one for spans the compiled ``encode_span`` leaves
    to Python (events, links, trace state, sequence values...).
    """
    context = span.context
    assert context is not None, "a finished span has a context"
    out = bytearray(_SPAN_TRACE_ID)
    out += context.trace_id.to_bytes(16, "big")
    out += _SPAN_SPAN_ID
    out += context.span_id.to_bytes(8, "big")
    trace_state = context.trace_state
    if trace_state:
        out += _trace_state_field(trace_state)
    parent = span.parent
    if parent:
        out += _SPAN_PARENT_SPAN_ID
        out += parent.span_id.to_bytes(8, "big")
    name = span.name
    if name:
        out += _str_field(_SPAN_NAME, name)
    kind = span.kind
    out += _KIND_BY_ID.get(id(kind)) or _KIND[kind]
    start = span.start_time
    if start:
        out += _SPAN_START
        out += _PACK_U64(start)
    end = span.end_time
    if end:
        out += _SPAN_END
        out += _PACK_U64(end)
    _append_attributes(out, _SPAN_ATTRIBUTES, span.attributes)
    dropped = span.dropped_attributes
    if dropped:
        out += _SPAN_DROPPED_ATTRIBUTES + _varint(dropped)
    events = span.events
    if events:
        for event in events:
            out += _SPAN_EVENTS
            out += _sized(_event(event))
    dropped = span.dropped_events
    if dropped:
        out += _SPAN_DROPPED_EVENTS + _varint(dropped)
    links = span.links
    if links:
        for link in links:
            out += _SPAN_LINKS
            out += _sized(_link(link))
    dropped = span.dropped_links
    if dropped:
        out += _SPAN_DROPPED_LINKS + _varint(dropped)
    status = span.status
    if status is not None:
        out += _status_field(status)
    out += _FLAGS_REMOTE if parent and parent.is_remote else _FLAGS_LOCAL
    return bytes(out)


# A message's spans are encoded in C (telemetry/_span_codec.c, built when the project is
# installed): the same bytes for ~1/15 of the instructions. It hands every span it does not
# cover to the Python encoder above.
_span_codec.set_encode_fallback(encode_span_python)
encode_span: Callable[[ReadableSpanLike], bytes] = _span_codec.encode_span


def _event(event: EventLike) -> bytearray:
    out = bytearray()
    timestamp = event.timestamp
    if timestamp:
        out += _u64(_EVENT_TIME, timestamp)
    if event.name:
        out += _str_field(_EVENT_NAME, event.name)
    _append_attributes(out, _EVENT_ATTRIBUTES, event.attributes)
    dropped = event.dropped_attributes
    if dropped:
        out += _EVENT_DROPPED_ATTRIBUTES + _varint(dropped)
    return out


def _link(link: LinkLike) -> bytearray:
    # like the SDK: no trace_state on links
    context = link.context
    out = bytearray(_LINK_TRACE_ID)
    out += context.trace_id.to_bytes(16, "big")
    out += _LINK_SPAN_ID
    out += context.span_id.to_bytes(8, "big")
    _append_attributes(out, _LINK_ATTRIBUTES, link.attributes)
    dropped = link.dropped_attributes
    if dropped:
        out += _LINK_DROPPED_ATTRIBUTES + _varint(dropped)
    out += _LINK_FLAGS_REMOTE if context and context.is_remote else _LINK_FLAGS_LOCAL
    return out


# --- resources and scopes, encoded once per object ------------------------------------------


class _Encoded:
    """A resource's or scope's encoding and its group: equal objects share ``group``."""

    __slots__ = ("group", "head", "obj", "tail")

    def __init__(self, obj: object, group: object, head: bytes, tail: bytes) -> None:
        self.obj = obj  # held so that its id is not reused while cached
        self.group = group
        self.head = head  # the fields before the repeated one (resource / scope)
        self.tail = tail  # the fields after it (schema_url)


class _Cache:
    """Encodings by object identity; group tokens by the object's own ``==`` and hash.

    The SDK groups by ``Resource`` and ``InstrumentationScope`` as dict keys, so equal
    objects share one group; asking that once per object keeps its grouping without
    hashing a resource per span.
    """

    def __init__(self, encode: Any) -> None:
        self._encode = encode
        self._by_id: dict[int, _Encoded] = {}
        self._groups: dict[Any, object] = {}

    def get(self, obj: Any) -> _Encoded:
        entry = self._by_id.get(id(obj))
        if entry is not None and entry.obj is obj:
            return entry
        if len(self._by_id) >= _CACHE_LIMIT:
            self._by_id.clear()
        if len(self._groups) >= _CACHE_LIMIT:
            # Only with thousands of distinct resources: equal ones met before and after
            # this may land in separate (still valid) entries of one request.
            self._groups.clear()
        group = self._groups.setdefault(obj, object())
        head, tail = self._encode(obj)
        entry = _Encoded(obj, group, head, tail)
        self._by_id[id(obj)] = entry
        return entry


def _encode_resource(resource: ResourceLike) -> tuple[bytes, bytes]:
    head = _RS_RESOURCE + _sized(_attributes(_RES_ATTRIBUTES, resource.attributes))
    schema_url = resource.schema_url
    return head, _str_field(_RS_SCHEMA_URL, schema_url) if schema_url else b""


def _encode_scope(scope: InstrumentationScopeLike | None) -> tuple[bytes, bytes]:
    if scope is None:
        return _SS_SCOPE + b"\x00", b""
    body = bytearray()
    if scope.name:
        body += _str_field(_SCOPE_NAME, scope.name)
    if scope.version:
        body += _str_field(_SCOPE_VERSION, scope.version)
    _append_attributes(body, _SCOPE_ATTRIBUTES, scope.attributes)
    schema_url = scope.schema_url
    return _SS_SCOPE + _sized(body), _str_field(_SS_SCHEMA_URL, schema_url) if schema_url else b""


_RESOURCES: Final = _Cache(_encode_resource)
_SCOPES: Final = _Cache(_encode_scope)
_NO_SCOPE: Final = _Encoded(None, None, *_encode_scope(None))


def _scope_entry(scope: InstrumentationScopeLike | None) -> _Encoded:
    # the SDK keys on ``span.instrumentation_scope or None``
    return _SCOPES.get(scope) if scope else _NO_SCOPE


# --- requests ---------------------------------------------------------------------------------


class RequestBuilder:
    """Spans (or their encodings) grouped by resource and scope, joined into one request.

    ``add(span)`` encodes a span now; ``add_encoded(resource, scope, span_bytes)`` takes
    ``encode_span`` output made earlier. ``build()`` returns the serialized
    ``ExportTraceServiceRequest``; ``clear()`` empties the builder for the next batch.
    Not thread-safe: one builder per thread (the module caches are safe to share).
    """

    __slots__ = ("_count", "_groups")

    def __init__(self) -> None:
        # resource group -> [resource entry, {scope group -> [scope entry, sized spans]}]
        self._groups: dict[object, tuple[_Encoded, dict[object, tuple[_Encoded, list[bytes]]]]] = {}
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def add(self, span: ReadableSpanLike) -> None:
        self.add_encoded(span.resource, span.instrumentation_scope, encode_span(span))

    def add_encoded(
        self,
        resource: ResourceLike,
        scope: InstrumentationScopeLike | None,
        span: bytes,
    ) -> None:
        res = _RESOURCES.get(resource)
        scopes = self._groups.get(res.group)
        if scopes is None:
            scopes = self._groups[res.group] = (res, {})
        sc = _scope_entry(scope)
        spans = scopes[1].get(sc.group)
        if spans is None:
            spans = scopes[1][sc.group] = (sc, [])
        n = len(span)
        spans[1].append(_SS_SPANS + (_SMALL[n] if n < 0x80 else _varint(n)) + span)
        self._count += 1

    def build(self) -> bytes:
        """The request in one allocation: lengths are summed first and every piece is
        joined once (nesting bytearrays copied each span three more times, ~4 MB at
        the peak of a 2,048-span batch)."""
        parts: list[bytes] = []
        for res, scopes in self._groups.values():
            resource_parts = [res.head]
            for sc, spans in scopes.values():
                size = len(sc.head) + sum(map(len, spans)) + len(sc.tail)
                resource_parts += (_RS_SCOPE_SPANS, _length(size), sc.head, *spans, sc.tail)
            resource_parts.append(res.tail)
            size = sum(map(len, resource_parts))
            parts += (_REQ_RESOURCE_SPANS, _length(size), *resource_parts)
        return b"".join(parts)

    def clear(self) -> None:
        self._groups.clear()
        self._count = 0


def encode_request(spans: Iterable[ReadableSpanLike]) -> bytes:
    """The serialized ``ExportTraceServiceRequest`` for ``spans``, as the SDK would write it."""
    builder = RequestBuilder()
    for span in spans:
        builder.add(span)
    return builder.build()


def request_from_encoded(
    groups: Mapping[tuple[ResourceLike, InstrumentationScopeLike | None], Iterable[bytes]]
    | Iterable[tuple[tuple[ResourceLike, InstrumentationScopeLike | None], Iterable[bytes]]],
) -> bytes:
    """A request from ``encode_span`` outputs grouped by ``(resource, scope)``.

    Accepts a mapping or its ``items()``; keys whose resources (or scopes) are equal
    are merged as the SDK would, in order of first appearance. A dict keyed by
    resources hashes each one (the SDK's ``Resource.__hash__`` JSON-encodes it), so a
    span pipeline should prefer a ``RequestBuilder`` or a list of pairs.
    """
    items = groups.items() if isinstance(groups, Mapping) else groups
    builder = RequestBuilder()
    for (resource, scope), spans in items:
        for span in spans:
            builder.add_encoded(resource, scope, span)
    return builder.build()
