"""Command lines (``/roll 2d6``, ``/roll dice:2d6``) to interaction options, as Discord does.

The fake knows a command's options only from its registered JSON (what
``tree.sync`` PUT, or the bot's tree handed over directly), so a test types
what a user would and gets the payload Discord would send. Named values
(``dice:2d6``) and positional ones fill the options in order; the last string
option takes the rest of the line, so ``/mtg t:dragon c:r`` is one query.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

JSON = dict[str, Any]

SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2
STRING, INTEGER, BOOLEAN, NUMBER = 3, 4, 5, 10
_WORD = re.compile(r"\S+")


class SlashError(ValueError):
    """The line is not something Discord's client would let a user send."""


def split_line(line: str) -> tuple[str, str]:
    """``"/roll 2d6"`` -> ``("roll", "2d6")``."""
    text = line.strip()
    if not text.startswith("/") or len(text) < 2:
        raise SlashError(f"not a slash command: {line!r}")
    name, _, rest = text[1:].partition(" ")
    return name.lower(), rest.strip()


def find_command(commands: Sequence[JSON], name: str) -> JSON:
    for command in commands:
        if command.get("name") == name and command.get("type", 1) == 1:
            return command
    raise SlashError(f"no slash command /{name} is registered")


def build_data(command: JSON, rest: str, *, focus_last: bool = False) -> JSON:
    """An APPLICATION_COMMAND interaction's ``data`` (AUTOCOMPLETE's with ``focus_last``)."""
    data: JSON = {"id": str(command.get("id", "0")), "name": command["name"], "type": 1}
    if command.get("guild_id"):
        data["guild_id"] = str(command["guild_id"])
    node, container = command, data.setdefault("options", [])
    while True:
        subs = {o["name"]: o for o in node.get("options") or [] if o["type"] in (1, 2)}
        if not subs:
            break
        word, _, after = rest.partition(" ")
        sub = subs.get(word.lower())
        if sub is None:
            raise SlashError(f"/{command['name']} needs one of: {', '.join(sorted(subs))}")
        entry: JSON = {"name": sub["name"], "type": sub["type"], "options": []}
        container.append(entry)
        node, container, rest = sub, entry["options"], after.strip()
    params = [o for o in node.get("options") or [] if o["type"] not in (1, 2)]
    values = _assign(params, rest)
    for param in params:
        if param["name"] in values:
            option: JSON = {"name": param["name"], "type": param["type"]}
            option["value"] = _convert(param, values[param["name"]], partial=focus_last)
            container.append(option)
        elif param.get("required") and not focus_last:
            raise SlashError(f"/{command['name']}: option {param['name']} is required")
    if focus_last:
        _focus(container, params)
    return data


def _assign(params: list[JSON], rest: str) -> dict[str, str]:
    """Which text each option gets: ``name:value`` words, else the next free option."""
    names = {p["name"] for p in params}
    words = [(m.start(), m.group()) for m in _WORD.finditer(rest)]

    def named(word: str) -> str | None:
        key, sep, _ = word.partition(":")
        return key if sep and key in names else None

    values: dict[str, str] = {}
    index = 0
    while index < len(words):
        start, word = words[index]
        key = named(word)
        free = [p for p in params if p["name"] not in values]
        if key is None and not free:
            raise SlashError(f"too many values: {rest!r}")
        param = next(p for p in params if p["name"] == key) if key else free[0]
        greedy = param["type"] == STRING and (key is not None or len(free) == 1)
        stop = index + 1
        if greedy:
            while stop < len(words) and named(words[stop][1]) is None:
                stop += 1
        end = words[stop][0] if stop < len(words) else len(rest)
        text = rest[start:end].strip()
        values[param["name"]] = text.partition(":")[2] if key else text
        index = stop
    return values


def _convert(param: JSON, text: str, *, partial: bool) -> Any:
    kind = param["type"]
    try:
        if kind == INTEGER:
            return int(text)
        if kind == NUMBER:
            return float(text)
    except ValueError:
        if partial:
            return text
        raise SlashError(f"option {param['name']} needs a number, not {text!r}") from None
    if kind == BOOLEAN:
        return text.lower() in {"true", "yes", "1", "on"}
    return text


def _focus(container: list[JSON], params: list[JSON]) -> None:
    """Mark the option being typed: the last one given, else the first (empty) one."""
    given = [o for o in container if "value" in o]
    if given:
        given[-1]["focused"] = True
    elif params:
        container.append(
            {"name": params[0]["name"], "type": params[0]["type"], "value": "", "focused": True}
        )
