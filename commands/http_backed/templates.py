"""Safe templates for HTTP-backed commands: ``{arg1}``, ``{author_id}``, ``{data.name}``.

``str.format`` would let a template written in a config file reach attributes
and items of the objects it is given (``{ctx.bot.http.token}``). These templates
use ``str.format``'s syntax only to parse; every placeholder is a plain name
looked up in a dict of strings (request side) or a dotted path into JSON
(response side), with no conversion and no format spec.

In the URL, a value from chat must not choose which path is called:
``request_url`` keeps each value inside its path segment (see there).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator, Mapping
from string import Formatter
from typing import Any
from urllib.parse import quote, unquote

from discord.ext import commands
from yarl import URL

MAX_ARGS = 9
REQUEST_FIELDS = frozenset(
    {"args", "author_id", "guild_id", "channel_id", *(f"arg{i}" for i in range(1, MAX_ARGS + 1))}
)
JSON_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")

_formatter = Formatter()
# What the operator's literal URL text may hold as it is; anything else (a space,
# non-ASCII) is percent-encoded, as yarl would, but without yarl's normalisation.
_LITERAL_SAFE = "!#$&'()*+,/:;=?@[]~%"
# Path segments a server resolves (``%2e%2e`` too: the WHATWG URL standard
# decodes it to ``..``), and the empty segment that ``//`` collapses into.
_PATH_CHANGING = frozenset({"", ".", ".."})


def placeholders(template: str) -> Iterator[str]:
    """Each placeholder's name; ``ValueError`` for anything but a plain ``{name}``."""
    for _, name, spec, conversion in _formatter.parse(template):
        if name is None:
            continue
        if not name:
            raise ValueError("empty placeholder {} (name it, e.g. {arg1})")
        if spec or conversion:
            raise ValueError(f"placeholder {{{name}}} may not have a format spec or conversion")
        yield name


def check_request_template(template: str) -> list[str]:
    """The request placeholders ``template`` uses; ``ValueError`` names an unknown one."""
    names = list(placeholders(template))
    for name in names:
        if name not in REQUEST_FIELDS:
            raise ValueError(
                f"unknown placeholder {{{name}}}; use {{args}}, {{arg1}}..{{arg{MAX_ARGS}}}, "
                "{author_id}, {guild_id} or {channel_id}"
            )
    return names


def check_response_template(template: str) -> list[str]:
    """The JSON paths ``template`` uses (``{a.b.0}``); ``ValueError`` for anything else."""
    names = list(placeholders(template))
    for name in names:
        if not JSON_PATH.match(name):
            raise ValueError(f"placeholder {{{name}}} is not a dotted JSON path like {{a.b.0}}")
    return names


def render(template: str, lookup: Callable[[str], str]) -> str:
    """Literal text plus ``lookup(name)`` for each placeholder, ``{{``/``}}`` unescaped."""
    parts: list[str] = []
    for literal, name, _, _ in _formatter.parse(template):
        parts.append(literal)
        if name is not None:
            parts.append(lookup(name))
    return "".join(parts)


_CHANGES_PATH = (
    "That argument can't be used: it would change the path of the URL this command calls."
)


class UnusableValue(commands.BadArgument):
    """A value from chat that cannot go into the request as asked (a bad_input reply)."""


def request_url(template: str, values: Mapping[str, str]) -> URL:
    """The URL to call: every value stays inside its path segment or query value.

    Each value is percent-encoded in full (``/``, ``?``, ``#``, ``%`` and all), the
    URL is built from the encoded text as it is (``URL(..., encoded=True)``), so
    nothing normalises it after substitution; then a path segment that holds a
    placeholder and would be ``.``, ``..`` or empty once a server decodes it is
    refused. Such a value cannot be made safe by encoding, as servers that follow
    the WHATWG URL standard resolve ``%2e%2e`` as ``..``.
    """
    url = URL(_fill(template, lambda name: _encoded(values[name])), encoded=True)
    probe = URL(_fill(template, lambda _name: "x"), encoded=True)
    if len(url.raw_parts) != len(probe.raw_parts):
        raise UnusableValue(_CHANGES_PATH)
    for segment, unfilled in zip(url.raw_parts, probe.raw_parts, strict=True):
        if segment != unfilled and unquote(segment) in _PATH_CHANGING:
            raise UnusableValue(_CHANGES_PATH)
    return url


def _fill(template: str, encoded: Callable[[str], str]) -> str:
    parts: list[str] = []
    for literal, name, _, _ in _formatter.parse(template):
        parts.append(quote(literal, safe=_LITERAL_SAFE))
        if name is not None:
            parts.append(encoded(name))
    return "".join(parts)


def _encoded(value: str) -> str:
    try:
        return quote(value, safe="")
    except UnicodeEncodeError:
        raise UnusableValue("That text has a character that isn't valid Unicode.") from None


class MissingField(KeyError):
    """A JSON path that the response does not have."""


def json_path(data: Any, path: str) -> Any:
    """Walk ``a.b.0`` through dicts and lists; ``MissingField`` if a step is absent."""
    current = data
    for step in path.split("."):
        if isinstance(current, dict) and step in current:
            current = current[step]
        elif isinstance(current, list) and step.isdigit() and int(step) < len(current):
            current = current[int(step)]
        else:
            raise MissingField(path)
    return current


def as_text(value: Any) -> str:
    """A JSON value as chat text: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
