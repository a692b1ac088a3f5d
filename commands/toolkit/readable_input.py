"""Text from chat that is not valid Unicode is refused before any command sees it.

Discord's JSON can carry an escaped lone surrogate (``\\ud800``), which Python
decodes into a string that cannot be encoded again: a command that URL-encodes
it (``!mtg``, an HTTP-backed command's URL) would fail with ``UnicodeEncodeError``,
an unexpected error logged with its traceback. It is the user's input that is
wrong, so it is refused as bad input (outcome ``bad_input``), once for every
command, where the argument length is checked and in the same way.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from commands.toolkit.failures import UserFacingError
from telemetry.schema import Outcome, readable


def check_readable(*texts: str) -> None:
    """Refuse ``texts`` if any holds a lone surrogate."""
    if any(readable(text) != text for text in texts):
        raise UserFacingError(
            "That message has a character that isn't valid Unicode (a broken emoji?).",
            Outcome.BAD_INPUT,
        )


def option_values(options: Sequence[Mapping[str, Any]]) -> Iterator[str]:
    """Every string value of a slash command's options, subcommands included."""
    for option in options:
        yield from option_values(option.get("options") or [])
        value = option.get("value")
        if isinstance(value, str):
            yield value
