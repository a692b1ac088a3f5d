"""The HTTP span's name and start attributes, as the stable HTTP client conventions define them."""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes.http_attributes import HTTP_METHOD, HTTP_URL
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_REQUEST_METHOD_ORIGINAL,
)
from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS, SERVER_PORT
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from yarl import URL

from telemetry.http_spans import _request_attributes

TOKEN = "aW50ZXJhY3Rpb246MTIzOnNlY3JldA"


def test_a_request_is_named_after_its_method_with_server_address_and_default_port() -> None:
    url = URL(f"https://discord.com/api/v10/interactions/123/{TOKEN}/callback")
    name, attributes = _request_attributes("POST", url, "stable")
    assert name == "POST"
    assert attributes == {
        HTTP_REQUEST_METHOD: "POST",
        URL_FULL: "https://discord.com/api/v10/interactions/123/{token}/callback",
        SERVER_ADDRESS: "discord.com",
        SERVER_PORT: 443,
    }


def test_a_method_outside_the_standard_ones_is_other_and_the_span_is_named_http() -> None:
    name, attributes = _request_attributes("PURGE", URL("http://cache.test:8080/x"), "stable")
    assert name == "HTTP"
    assert attributes[HTTP_REQUEST_METHOD] == "_OTHER"
    assert attributes[HTTP_REQUEST_METHOD_ORIGINAL] == "PURGE"
    assert attributes[SERVER_PORT] == 8080


def test_dup_adds_the_old_names_with_the_same_redacted_url() -> None:
    url = URL(f"https://discord.com/api/v10/webhooks/1/{TOKEN}/messages/@original")
    _, attributes = _request_attributes("PATCH", url, "dup")
    assert attributes[HTTP_METHOD] == "PATCH"
    assert attributes[HTTP_URL] == attributes[URL_FULL]
    assert TOKEN not in repr(attributes)
