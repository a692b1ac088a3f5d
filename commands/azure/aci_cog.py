"""``aci``: manage Azure Container Instances from chat (``!aci ...`` and ``/aci ...``).

Reads need the ``aci-reader`` flag, changes ``aci-operator``. Stop and restart
ask first (``aci_ask.py``: the requester's Confirm, or a second operator's Approve
under ``aci-two-person``, with a timeout). A change is
acknowledged at once, and that same message is edited when Azure finishes or
fails; the command waits for it inside the message's trace (bounded by
``AZURE_OPERATION_TIMEOUT_S``), so the trace shows the whole operation and each
message's operation is independent of the others.

A failure edited into the acknowledgement is recorded on the root span here
(``record_error``), since the error mapper would otherwise send a second reply.
"""

from __future__ import annotations

import io
import time
from collections.abc import Awaitable, Callable
from typing import Any

import discord
from discord import app_commands
from discord.ext import commands

from commands.azure.aci_ask import OPERATOR_FLAG, RESTART, START, STOP, Question, Verb, ask
from commands.azure.aci_format import code, code_block, container_state, list_table, status_text
from commands.azure.arm_client import Aci, AzureError, GroupRef
from commands.ops.audit import Actor, AuditEntry, AuditLog
from commands.toolkit.failures import UserFacingError, record_failure, unwrap
from commands.toolkit.flag_checks import FlagDenied, allowed, requires_flag
from commands.toolkit.hybrid import hybrid_group, subcommand
from commands.toolkit.limits import EXPENSIVE
from commands.toolkit.replies import edit, reply
from telemetry import schema
from telemetry.schema import Outcome

# discord.py's hybrid decorators infer ``Never`` for the callback under mypy; the typed
# wrappers in commands/toolkit/hybrid.py pin the context type instead.
Ctx = commands.Context[commands.Bot]

NOT_CONFIGURED = (
    "Azure is not configured here: the bot needs AZURE_SUBSCRIPTION_ID and AZURE_RESOURCE_GROUP."
)
INLINE_LOG_CHARS = 1800
MAX_CHOICES = 25  # Discord's limit for autocomplete
NAMES_TTL_S = 30.0
MAX_TAIL = 10_000
CHANGES = frozenset({"aci start", "aci stop", "aci restart"})


class NotAnOption(commands.Converter[str]):
    """A container name, which never starts with ``--`` (so ``--tail`` is left to the flags)."""

    async def convert(self, ctx: commands.Context[Any], argument: str) -> str:
        if argument.startswith("--"):
            raise commands.BadArgument("not a container name")
        return argument


class LogFlags(commands.FlagConverter, prefix="--", delimiter=" "):
    tail: int | None = commands.flag(default=None, description="How many lines from the end")


class Azure(commands.Cog, name="Azure"):
    """Azure Container Instances: list, status, logs, start, stop, restart."""

    def __init__(
        self,
        aci: Aci | None,
        *,
        confirm_timeout_s: float,
        logs_tail: int,
        audit: AuditLog | None = None,
    ) -> None:
        self._client = aci
        self.confirm_timeout_s = confirm_timeout_s
        self.logs_tail = logs_tail
        self.audit = audit
        self._names: tuple[float, list[str]] | None = None

    def _audit(self, entry: AuditEntry) -> None:
        if self.audit is not None:
            self.audit.record(entry)

    @commands.Cog.listener()
    async def on_command_error(self, ctx: Ctx, error: commands.CommandError) -> None:
        """A denied attempt at a change goes to the audit channel too (the reply is the
        error mapper's; a listener does not count as the cog handling its own errors)."""
        command = ctx.command.qualified_name if ctx.command is not None else ""
        if command not in CHANGES or not isinstance(unwrap(error), FlagDenied):
            return
        self._audit(AuditEntry.here(Actor.of(ctx.author), command, _asked_group(ctx), "denied"))

    @property
    def aci_client(self) -> Aci:
        if self._client is None:
            raise UserFacingError(NOT_CONFIGURED)
        return self._client

    @hybrid_group(
        name="aci", invoke_without_command=True, extras={EXPENSIVE: True},
        help="Azure Container Instances: list, status, logs, start, stop, restart.",
    )  # fmt: skip
    # Discord shows /aci only to members who may manage the server until an admin opens
    # it to a role (Server Settings > Integrations); the aci-* flags still decide.
    @app_commands.default_permissions(manage_guild=True)
    async def aci(self, ctx: Ctx) -> None:
        prefix = ctx.clean_prefix
        await reply(
            ctx,
            f"`{prefix}aci list`, `{prefix}aci status <group>`, "
            f"`{prefix}aci logs <group> [container] [--tail N]`, "
            f"`{prefix}aci start|stop|restart <group>`",
        )

    # -- reads ------------------------------------------------------------

    @subcommand(aci, name="list", help="Every container group: state, restarts, image.")
    @requires_flag("aci-reader")
    async def list_groups(self, ctx: Ctx) -> None:
        aci = self.aci_client
        found = await aci.list_groups()
        await reply(ctx, list_table(found, aci.resource_groups))

    @subcommand(aci, help="A group's containers, state, last events and address.")
    @app_commands.describe(group="Container group name (or resource-group/name)")
    @requires_flag("aci-reader")
    async def status(self, ctx: Ctx, group: str) -> None:
        found = await self.aci_client.find(group)
        await reply(ctx, status_text(found))

    @subcommand(aci, help="A container's latest log lines (long output comes as a file).")
    @app_commands.describe(
        group="Container group name (or resource-group/name)",
        container="Container name (default: the group's first container)",
    )
    @requires_flag("aci-reader")
    async def logs(
        self,
        ctx: Ctx,
        group: str,
        container: NotAnOption | None = None,
        *,
        flags: LogFlags,
    ) -> None:
        tail = self.logs_tail if flags.tail is None else flags.tail
        if not 1 <= tail <= MAX_TAIL:
            raise UserFacingError(f"--tail must be between 1 and {MAX_TAIL}.", Outcome.BAD_INPUT)
        aci = self.aci_client
        found = await aci.find(group)
        names = [c.name for c in found.group.containers or []]
        name = str(container) if container else (names[0] if names else found.ref.name)
        if name not in names:
            raise UserFacingError(
                f"`{found.ref.name}` has no container {code(name)}; it has "
                + ", ".join(code(n) for n in names) + ".",
                Outcome.BAD_INPUT,
            )  # fmt: skip
        text = await aci.logs(found.ref, name, tail)
        if not text.strip():
            await reply(ctx, f"No log output from {code(name)} in `{found.ref.name}`.")
        elif len(text) <= INLINE_LOG_CHARS:
            await reply(ctx, code_block(text.rstrip("\n")))
        else:
            file = discord.File(io.BytesIO(text.encode()), filename=f"{found.ref.name}-{name}.log")
            count = text.count("\n")
            what = f"Last {count} line(s) of {code(name)} in `{found.ref.name}`:"
            await reply(ctx, what, file=file)

    # -- changes ----------------------------------------------------------

    @subcommand(aci, help="Start a stopped container group.")
    @app_commands.describe(group="Container group name (or resource-group/name)")
    @requires_flag(OPERATOR_FLAG)
    async def start(self, ctx: Ctx, group: str) -> None:
        aci = self.aci_client
        await self._change(ctx, group, START, aci.start, confirm=False)

    @subcommand(aci, help="Stop a container group (asks first).")
    @app_commands.describe(group="Container group name (or resource-group/name)")
    @requires_flag(OPERATOR_FLAG)
    async def stop(self, ctx: Ctx, group: str) -> None:
        aci = self.aci_client
        await self._change(ctx, group, STOP, aci.stop, confirm=True)

    @subcommand(aci, help="Restart a container group (asks first).")
    @app_commands.describe(group="Container group name (or resource-group/name)")
    @requires_flag(OPERATOR_FLAG)
    async def restart(self, ctx: Ctx, group: str) -> None:
        aci = self.aci_client
        await self._change(ctx, group, RESTART, aci.restart, confirm=True)

    @status.autocomplete("group")
    @logs.autocomplete("group")
    @start.autocomplete("group")
    @stop.autocomplete("group")
    @restart.autocomplete("group")
    async def group_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        """Group names for ``/aci ... group:``, for readers only; none rather than an error.

        One names-only list call per resource group, remembered for a short while:
        every keystroke is an interaction.
        """
        if self._client is None or not await allowed(interaction, "aci-reader"):
            return []
        try:
            names = await self._group_names(self._client)
        except UserFacingError:
            return []
        typed = current.strip().lower()
        matches = [name for name in names if typed in name.lower()]
        return [app_commands.Choice(name=n, value=n) for n in matches[:MAX_CHOICES]]

    async def _group_names(self, aci: Aci) -> list[str]:
        now = time.monotonic()
        if self._names is not None and now - self._names[0] < NAMES_TTL_S:
            return self._names[1]
        refs = await aci.group_refs()
        several = len(aci.resource_groups) > 1
        names = sorted(f"{r.resource_group}/{r.name}" if several else r.name for r in refs)
        self._names = (now, names)
        return names

    async def _change(
        self,
        ctx: Ctx,
        group: str,
        verb: Verb,
        act: Callable[[GroupRef], Awaitable[None]],
        *,
        confirm: bool,
    ) -> None:
        began = time.monotonic()
        began_s = time.time()
        found = await self.aci_client.find(group)
        name = found.ref.name
        resource = f"{found.ref.resource_group}/{name}"
        action = f"aci {verb.name}"
        who = Actor.of(ctx.author)

        def audit(result: str, approver: Actor | None = None) -> None:
            # Who pressed: the approver (two-person), else the requester's own Confirm.
            detail = "confirmed by requester" if confirm and approver is None and asked else None
            self._audit(
                AuditEntry.here(
                    who, action, resource, result,
                    duration_s=time.monotonic() - began, started_s=began_s,
                    approver=approver, detail=detail,
                )
            )  # fmt: skip

        ack = f"\u23f3 {verb.doing} `{name}`\u2026 I'll edit this message when Azure is done."
        approver: Actor | None = None
        asked = False
        if confirm:
            question = Question(ctx, found, verb, ack, action, resource)
            answer = await ask(question, self.confirm_timeout_s, self._audit)
            if isinstance(answer, str):
                audit(answer)
                return
            message, approver = answer
            asked = True
        else:
            message = await reply(ctx, ack)
        started = time.monotonic()
        try:
            await act(found.ref)
            after = await self.aci_client.get(found.ref)
        except AzureError as exc:
            await self._failed_in_place(
                ctx, message, f"{verb.name.title()} of `{name}` failed", exc
            )
            audit(f"failed: {exc}", approver)
            return
        states = ", ".join(
            f"{code(c.name)} {container_state(c)[0]}" for c in after.containers or []
        )
        took = time.monotonic() - started
        await edit(message, f"\u2705 `{name}` {verb.done} in {took:.1f} s. Now: {states}.")
        audit("ok", approver)

    async def _failed_in_place(
        self, ctx: Ctx, message: discord.Message, what: str, exc: AzureError
    ) -> None:
        classified = record_failure(exc, what=what, bot=ctx.bot)
        await edit(message, f"\u274c {what}: {classified.reply}")


def _asked_group(ctx: Ctx) -> str:
    """The group a refused change named (checks run before arguments are converted)."""
    if ctx.interaction is not None:
        return str(getattr(ctx.interaction.namespace, "group", "") or "?")
    words = ctx.message.content.split()
    name = ctx.command.name if ctx.command is not None else ""
    rest = words[words.index(name) + 1 :] if name in words else []
    return schema.truncate(rest[0], 64) if rest else "?"
