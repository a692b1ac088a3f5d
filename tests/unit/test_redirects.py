"""Following a redirect: same origin only, and the method a browser would use next."""

from __future__ import annotations

import pytest
from yarl import URL

from commands.toolkit.redirects import Hop, RefusedRedirect, next_hop

ORIGIN = URL("https://api.example.test/api/call")


@pytest.mark.parametrize(
    "location",
    [
        "https://other.example.test/x",
        "http://api.example.test/x",
        "https://api.example.test:8443/x",
    ],
    ids=["host", "scheme", "port"],
)
def test_a_redirect_off_the_origin_is_refused(location: str) -> None:
    with pytest.raises(RefusedRedirect):
        next_hop(ORIGIN, Hop(ORIGIN, "GET"), 302, location, "profile endpoint")


def test_a_relative_redirect_stays_on_the_origin() -> None:
    hop = next_hop(ORIGIN, Hop(ORIGIN, "GET"), 301, "../v2/call?x=1", "profile endpoint")
    assert hop.url == URL("https://api.example.test/v2/call?x=1")


def test_a_303_or_a_302_after_a_post_becomes_a_get_without_body() -> None:
    post = Hop(ORIGIN, "POST", {"said": "hi"})
    assert next_hop(ORIGIN, post, 303, "/done", "echo endpoint") == Hop(
        ORIGIN.with_path("/done"), "GET"
    )
    assert next_hop(ORIGIN, post, 302, "/done", "echo endpoint").method == "GET"


def test_a_307_repeats_the_request_with_its_body() -> None:
    post = Hop(ORIGIN, "POST", {"said": "hi"})
    assert next_hop(ORIGIN, post, 307, "/again", "echo endpoint") == Hop(
        ORIGIN.with_path("/again"), "POST", {"said": "hi"}
    )
