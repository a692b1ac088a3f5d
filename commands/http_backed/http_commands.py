"""HTTP-backed commands from the commands file, e.g. ``!relationships`` on an Azure Function.

Each ``[[command]]`` becomes a real ``commands.Command`` (help text, cooldown,
max concurrency, optional flag check) in this one cog, so ``!help`` lists them
and the error mapper treats them like any other command. The endpoint is the
operator's own: it receives ``traceparent`` so its spans join the message's
trace (never baggage). Values from chat are URL-encoded into the URL and query,
each kept inside its path segment (``templates.request_url``).

Each is a hybrid command: ``/name`` takes one string option ``args``, the same
text ``!name`` takes after the name, so one template language serves both
(Discord cannot know a declared command's argument structure any better).
"""

from __future__ import annotations

import shlex
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any

import aiohttp
from discord import app_commands
from discord.ext import commands

from commands.http_backed.commands_file import HttpCommandSpec, ResponseSpec
from commands.http_backed.templates import (
    MAX_ARGS,
    MissingField,
    as_text,
    json_path,
    render,
    request_url,
)
from commands.toolkit.api_client import ApiClient, ApiError, ApiResponse
from commands.toolkit.failures import UserFacingError
from commands.toolkit.limits import EXPENSIVE, Limits
from commands.toolkit.replies import reply
from telemetry import schema

FlagCheck = Callable[[str], Callable[[commands.Context[Any]], Awaitable[bool]]]
ACCEPT = "application/json, text/plain;q=0.9, */*;q=0.5"
APP_DESCRIPTION_MAX = 100


def request_values(ctx: commands.Context[Any], args: str, needed: int) -> dict[str, str]:
    """What templates may use; ``UserInputError`` when too few arguments were given."""
    try:
        words = shlex.split(args)
    except ValueError:
        words = args.split()
    if len(words) < needed:
        raise commands.UserInputError(
            f"This command needs {needed} argument{'s' if needed != 1 else ''}."
        )
    values = {
        "args": args.strip(),
        "author_id": str(ctx.author.id),
        "guild_id": str(ctx.guild.id) if ctx.guild else "",
        "channel_id": str(ctx.channel.id),
    }
    for number in range(1, MAX_ARGS + 1):
        values[f"arg{number}"] = words[number - 1] if number <= len(words) else ""
    return values


def fill_body(value: Any, values: dict[str, str]) -> Any:
    """Render every string inside a JSON body (the body is sent as JSON, so no escaping)."""
    if isinstance(value, str):
        return render(value, values.__getitem__)
    if isinstance(value, dict):
        return {key: fill_body(item, values) for key, item in value.items()}
    if isinstance(value, list):
        return [fill_body(item, values) for item in value]
    return value


def answer_text(spec: ResponseSpec, response: ApiResponse) -> str:
    """The reply text the response mapping asks for."""
    if spec.type == "text":
        return response.text().strip()
    data = response.json()
    try:
        if spec.type == "json":
            assert spec.field is not None
            return as_text(json_path(data, spec.field)).strip()
        assert spec.template is not None
        return render(spec.template, lambda path: as_text(json_path(data, path))).strip()
    except MissingField as exc:
        raise ApiError(f"The {response.label}'s answer has no `{exc.args[0]}`.") from None


def usage_of(spec: HttpCommandSpec) -> str:
    if spec.usage is not None:
        return spec.usage
    names = [f"<arg{n}>" for n in range(1, spec.arg_count() + 1)]
    return " ".join(names) or ("[text]" if spec.takes_text() else "")


class HttpEndpoint:
    """Calls one declared endpoint; its bound ``run`` is the command's callback."""

    def __init__(self, spec: HttpCommandSpec, api: ApiClient, connect_timeout: float) -> None:
        self.spec = spec
        self.api = api
        self.label = f"{spec.name} endpoint"
        self.timeout = aiohttp.ClientTimeout(
            total=spec.timeout, connect=min(connect_timeout, spec.timeout)
        )
        self.needed = spec.arg_count()

    async def run(self, cog: HttpCommands, ctx: commands.Context[Any], *, args: str = "") -> None:
        spec = self.spec
        values = request_values(ctx, args, self.needed)
        url = request_url(spec.url, values)
        params = {key: render(template, values.__getitem__) for key, template in spec.query.items()}
        response = await self.api.request(
            f"{spec.name}.call",
            spec.method,
            url,
            label=self.label,
            params=params or None,
            json_body=fill_body(spec.body, values) if spec.body is not None else None,
            headers=spec.headers,
            accept=ACCEPT,
            ctx=ctx,
            timeout=self.timeout,
            propagate=True,
            attributes={schema.HTTP_COMMAND: spec.name},
        )
        text = answer_text(spec.response, response)
        if not text:
            raise UserFacingError(f"The {self.label} answered with nothing to say.")
        await reply(ctx, text)


def as_check(
    predicate: Callable[[commands.Context[Any]], Awaitable[bool]],
) -> Callable[[commands.Context[Any]], Coroutine[Any, Any, bool]]:
    """discord.py wants a coroutine function as a check; the flag check is any awaitable."""

    async def check(ctx: commands.Context[Any]) -> bool:
        return await predicate(ctx)

    # Whatever the predicate says about itself (the flag it evaluates) stays visible.
    check.__dict__.update(getattr(predicate, "__dict__", {}))
    return check


def callback_for(
    spec: HttpCommandSpec, endpoint: HttpEndpoint, usage: str
) -> Callable[..., Coroutine[Any, Any, None]]:
    """A fresh function per command, so discord.py can read (and annotate) its signature.

    The qualified name makes discord.py treat it as a method of the cog (first
    parameter the cog, then the context); ``args`` becomes the slash option.
    """

    async def callback(cog: HttpCommands, ctx: commands.Context[Any], *, args: str = "") -> None:
        await endpoint.run(cog, ctx, args=args)

    callback.__name__ = spec.name
    callback.__qualname__ = f"HttpCommands.{spec.name}"
    described = app_commands.describe(args=_fit(usage or "(no arguments)", APP_DESCRIPTION_MAX))
    return described(callback)


def _fit(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "\u2026"


def build_command(
    spec: HttpCommandSpec,
    endpoint: HttpEndpoint,
    defaults: Limits,
    flag_check: FlagCheck | None,
) -> commands.Command[Any, ..., Any]:
    limits = Limits(
        rate=spec.cooldown.rate if spec.cooldown else defaults.rate,
        per=spec.cooldown.per if spec.cooldown else defaults.per,
        concurrency=spec.max_concurrency or defaults.concurrency,
    )
    checks: list[Callable[[commands.Context[Any]], bool | Coroutine[Any, Any, bool]]] = []
    if spec.flag and flag_check is not None:
        checks.append(as_check(flag_check(spec.flag)))
    usage = usage_of(spec)
    command: commands.Command[Any, ..., Any] = commands.HybridCommand(
        callback_for(spec, endpoint, usage),
        name=spec.name,
        description=_fit(spec.description, APP_DESCRIPTION_MAX),
        help=spec.description,
        brief=spec.description,
        usage=usage,
        cooldown=limits.cooldown(),
        max_concurrency=limits.max_concurrency(),
        checks=checks,
        extras={EXPENSIVE: True},
    )
    # ``!help <name>`` describes the one free-text parameter with the declared usage.
    command.params["args"] = command.params["args"].replace(
        description=usage or "(no arguments)", displayed_default=""
    )
    return command


class HttpCommands(commands.Cog, name="Endpoints"):
    """Commands the operator declared in the commands file."""

    def __init__(
        self,
        api: ApiClient,
        specs: Sequence[HttpCommandSpec],
        *,
        limits: Limits | None = None,
        connect_timeout_s: float = 3.0,
        flag_check: FlagCheck | None = None,
    ) -> None:
        defaults = limits or Limits()
        built = [
            build_command(spec, HttpEndpoint(spec, api, connect_timeout_s), defaults, flag_check)
            for spec in specs
        ]
        # Cog.__new__ collected the class's (no) commands; add_cog injects whatever
        # this holds, binding each to the cog and adding it to the bot.
        self.__cog_commands__ = [*self.__cog_commands__, *built]
