"""The commands file (``COMMANDS_FILE``, TOML): HTTP-backed commands declared without code.

Validated once at start-up, so a typo stops the bot with one line naming the
file, the command and the field, instead of failing later in front of a user.
A missing file means no HTTP-backed commands. See docs/commands.md, "The commands file".
"""

from __future__ import annotations

import logging
import re
import tomllib
from collections.abc import Collection
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from commands.http_backed.templates import MAX_ARGS, check_request_template, check_response_template

log = logging.getLogger(__name__)

NAME = r"^[a-z][a-z0-9_-]{0,31}$"
FLAG_KEY = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# Query parameters that carry credentials (an Azure Function's ``code`` among them):
# a URL is recorded on the HTTP span, so these belong in ``headers``.
SECRET_PARAMS = frozenset(
    {"code", "key", "apikey", "api_key", "token", "access_token", "sig", "signature", "secret"}
)


class CommandsFileError(Exception):
    """The commands file is invalid; the message is one line for stderr."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class CooldownSpec(_Strict):
    rate: int = Field(ge=1, le=100)
    per: float = Field(gt=0, le=86_400)


class ResponseSpec(_Strict):
    """How the endpoint's answer becomes the reply: its text, one JSON field, or a template."""

    type: Literal["text", "json", "template"] = "text"
    field: str | None = None
    template: str | None = None

    @model_validator(mode="after")
    def _complete(self) -> ResponseSpec:
        if self.type == "json":
            if not self.field:
                raise ValueError('type "json" needs field = "path.to.value"')
            check_response_template("{" + self.field + "}")
        if self.type == "template":
            if not self.template:
                raise ValueError('type "template" needs template = "... {path} ..."')
            check_response_template(self.template)
        return self


class HttpCommandSpec(_Strict):
    """One ``[[command]]`` table."""

    name: str = Field(pattern=NAME)
    description: str = Field(min_length=1, max_length=200)
    usage: str | None = Field(default=None, max_length=100)
    url: str
    method: Literal["GET", "POST", "PUT", "PATCH", "DELETE"] = "GET"
    query: dict[str, str] = Field(default_factory=dict)
    body: dict[str, Any] | None = None
    headers: dict[str, str] = Field(default_factory=dict)
    response: ResponseSpec = Field(default_factory=ResponseSpec)
    timeout: float = Field(default=10.0, gt=0, le=60)
    cooldown: CooldownSpec | None = None
    max_concurrency: int | None = Field(default=None, ge=1, le=100)
    flag: str | None = Field(default=None, pattern=FLAG_KEY)

    @field_validator("method", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError("must be an absolute http(s) URL")
        if "{" in parts.netloc:
            raise ValueError("placeholders may not appear in the host")
        check_request_template(value)
        _no_secrets(key for key, _ in parse_qsl(parts.query))
        return value

    @field_validator("query")
    @classmethod
    def _query(cls, value: dict[str, str]) -> dict[str, str]:
        _no_secrets(value)
        for template in value.values():
            check_request_template(template)
        return value

    @field_validator("body")
    @classmethod
    def _body(cls, value: dict[str, Any] | None) -> dict[str, Any] | None:
        for template in _strings(value):
            check_request_template(template)
        return value

    def templates(self) -> list[str]:
        return [self.url, *self.query.values(), *_strings(self.body)]

    def arg_count(self) -> int:
        """How many positional arguments the templates need (``{arg3}`` needs three)."""
        used = [check_request_template(t) for t in self.templates()]
        numbers = [int(n[3:]) for names in used for n in names if re.fullmatch(r"arg\d", n)]
        return max(numbers, default=0)

    def takes_text(self) -> bool:
        return any("args" in check_request_template(t) for t in self.templates())


class CommandsFile(_Strict):
    command: list[HttpCommandSpec] = Field(default_factory=list)


def _no_secrets(keys: Any) -> None:
    for key in keys:
        if str(key).lower() in SECRET_PARAMS:
            raise ValueError(
                f"query parameter {key!r} looks like a credential; send it in headers "
                "(URLs are recorded on spans)"
            )


def _strings(value: Any) -> list[str]:
    """Every string inside a JSON-like body, where templates may appear."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return []


def load_commands(path: Path, reserved: Collection[str] = ()) -> list[HttpCommandSpec]:
    """Read and validate ``path``; ``reserved`` are the built-in names a command may not take."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        log.info("no commands file at %s: no HTTP-backed commands", path)
        return []
    except OSError as exc:
        raise CommandsFileError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise CommandsFileError(f"{path}: invalid TOML: {exc}") from None
    try:
        specs = CommandsFile.model_validate(data).command
    except ValidationError as exc:
        raise CommandsFileError(_describe(path, data, exc)) from None
    seen: set[str] = set()
    for spec in specs:
        where = f"{path}: command {spec.name!r}"
        if spec.name in reserved:
            raise CommandsFileError(f"{where}: name clashes with a built-in command")
        if spec.name in seen:
            raise CommandsFileError(f"{where}: declared twice")
        if spec.arg_count() > MAX_ARGS:
            raise CommandsFileError(f"{where}: at most {MAX_ARGS} arguments")
        seen.add(spec.name)
    return specs


def _describe(path: Path, data: dict[str, Any], exc: ValidationError) -> str:
    """The first error as ``file: command 'name': field: problem``."""
    first = exc.errors()[0]
    loc = list(first["loc"])
    where = str(path)
    if len(loc) >= 2 and loc[0] == "command" and isinstance(loc[1], int):
        entries = data.get("command")
        entry = entries[loc[1]] if isinstance(entries, list) and loc[1] < len(entries) else {}
        name = entry.get("name") if isinstance(entry, dict) else None
        where += f": command {name!r}" if isinstance(name, str) else f": command #{loc[1] + 1}"
        loc = loc[2:]
    fields = ".".join(str(part) for part in loc if not str(part).startswith("function-"))
    message = str(first["msg"]).removeprefix("Value error, ")
    return f"{where}: {fields}: {message}" if fields else f"{where}: {message}"
