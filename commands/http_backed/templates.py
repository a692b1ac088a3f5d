"""Safe templates for HTTP-backed commands: ``{arg1}``, ``{author_id}``, ``{data.name}``.

``str.format`` would let a template written in a config file reach attributes
and items of the objects it is given (``{ctx.bot.http.token}``). These templates
use ``str.format``'s syntax only to parse; every placeholder is a plain name
looked up in a dict of strings (request side) or a dotted path into JSON
(response side), with no conversion and no format spec.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from string import Formatter
from typing import Any

MAX_ARGS = 9
REQUEST_FIELDS = frozenset(
    {"args", "author_id", "guild_id", "channel_id", *(f"arg{i}" for i in range(1, MAX_ARGS + 1))}
)
JSON_PATH = re.compile(r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$")

_formatter = Formatter()


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
