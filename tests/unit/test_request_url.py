"""``request_url``: values from chat stay inside their segment, and nothing normalises the URL."""

from __future__ import annotations

import pytest

from commands.http_backed.templates import UnusableValue, request_url

VALUES = {"arg1": "a b/c", "guild_id": "", "args": "x&y=z"}


def test_values_are_encoded_in_full_in_the_path_and_the_query() -> None:
    url = request_url("https://fn.example/api/{arg1}/p?q={args}&g=1", VALUES)
    assert str(url) == "https://fn.example/api/a%20b%2Fc/p?q=x%26y%3Dz&g=1"
    assert url.query["q"] == "x&y=z"


def test_a_segment_left_empty_by_a_value_is_refused() -> None:
    with pytest.raises(UnusableValue):
        request_url("https://fn.example/api/guilds/{guild_id}/members", VALUES)


def test_dots_made_of_two_values_are_refused() -> None:
    with pytest.raises(UnusableValue):
        request_url("https://fn.example/api/{arg1}{arg2}/x", {"arg1": ".", "arg2": "."})


def test_a_lone_surrogate_is_unusable_not_a_crash() -> None:
    with pytest.raises(UnusableValue):
        request_url("https://fn.example/api/{arg1}", {"arg1": "\ud800"})
