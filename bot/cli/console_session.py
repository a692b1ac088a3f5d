"""``chatops console``: the real bot against an in-process fake Discord, driven from a prompt.

Each line is sent as a user's message; the bot's reply and the message's trace
are printed. A line starting with ``/`` is a slash command instead: the fake
builds the interaction from the bot's command tree, as Discord's client would.
No token and no network: everything runs on loopback, the external APIs too
(``bot/sandbox/offline.py`` fakes each one the settings leave unconfigured).

A few lines are the console's own, not the bot's (docs/running.md, "The sandbox
console"): ``/as`` changes who is typing (``bot/sandbox/personas.py``),
``/press LABEL`` clicks a button of the bot's last question, ``/complete LINE``
shows the autocomplete choices for a slash command being typed, ``/marker TEXT``
posts a deployment marker to (the fake) Honeycomb.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
from opentelemetry.sdk.trace import ReadableSpan
from rich.console import Console

from bot.cli.console_render import buttons, describe, ephemeral, print_trace
from bot.cli.line_editing import LineEditor
from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import sandbox
from bot.sandbox import FakeDiscord
from bot.sandbox.command_lines import SlashError
from bot.sandbox.personas import (
    AS_USAGE,
    Persona,
    PersonaError,
    Seat,
    flag_decisions,
    parse_as,
    seat,
)
from telemetry import schema
from telemetry.recent import RecentTraces

TRACE_WAIT_S = 30.0
PROMPT = "you> "


@dataclass(frozen=True)
class ConsoleOptions:
    """Who types first, and whether unconfigured services are faked."""

    persona: Persona = field(default_factory=Persona)
    fakes: bool = True
    history: Path | None = None


async def run_console(
    settings: Settings,
    lines: Sequence[str],
    recent: RecentTraces,
    out: Console,
    options: ConsoleOptions | None = None,
) -> None:
    """Send ``lines`` (or, with none, whatever is typed) and print replies and traces."""
    options = options or ConsoleOptions()
    with tempfile.TemporaryDirectory(prefix="chatops-console-") as workdir:
        async with AsyncExitStack() as stack:
            from bot.sandbox.offline import console_flags

            settings, flags_line = stack.enter_context(console_flags(settings))
            bot_options: dict[str, Any] = {}
            banner = ["fakes: off (--no-fakes): configured or public services are called"]
            if options.fakes:
                from bot.sandbox.offline import offline_services

                offline = await stack.enter_async_context(offline_services(settings, Path(workdir)))
                settings = offline.settings
                banner = offline.describe()
                if offline.azure is not None:
                    bot_options["azure"] = offline.azure
            fake, bot = await stack.enter_async_context(
                sandbox(settings, guild_id=options.persona.guild_id, **bot_options)
            )
            session = Session(fake, bot, recent, out, settings)
            out.print(
                f"[dim]sandbox: {bot.user} in guild {fake.guild.name!r}; "
                f"prefix {settings.bot_prefix!r}; Ctrl-D to quit[/dim]"
            )
            if flags_line is not None:
                banner.append(flags_line)
            for line in banner:
                out.print(line, style="dim", markup=False, highlight=False, soft_wrap=True)
            session.become(options.persona)
            if lines:
                for line in lines:
                    out.print(f"{PROMPT}{line}", markup=False, highlight=False)
                    await session.handle(line)
                return
            await interactive(session, options.history)


async def interactive(session: Session, history: Path | None) -> None:
    """Read lines with editing and history until end of input."""
    loop = asyncio.get_running_loop()
    if not sys.stdin.isatty():
        await piped(session)
        return
    editor = LineEditor(history)
    with editor:
        while True:
            try:
                line = await loop.run_in_executor(None, editor.read, PROMPT)
            except EOFError:
                return
            if line.strip():
                await session.handle(line)


async def piped(session: Session) -> None:
    """Lines from a pipe or a file, each printed after the prompt as ``-c`` prints it.

    Nobody sees the line being typed, so the transcript shows it; a program driving
    the console (a test, ``expect``) can read a trace id and use it in a later line.
    """
    loop = asyncio.get_running_loop()
    while line := await loop.run_in_executor(None, sys.stdin.readline):
        line = line.rstrip("\r\n")
        if line.strip():
            session.out.print(f"{PROMPT}{line}", markup=False, highlight=False)
            await session.handle(line)


class Session:
    """One console: the fake, the bot, who is typing, and a question awaiting a button."""

    def __init__(
        self,
        fake: FakeDiscord,
        bot: ChatOpsBot,
        recent: RecentTraces,
        out: Console,
        settings: Settings,
    ) -> None:
        self.fake = fake
        self.bot = bot
        self.recent = recent
        self.out = out
        self.settings = settings
        self.seat: Seat | None = None
        # The root span still open because the bot asked a question (key, value),
        # and the question (a message with buttons).
        self.waiting: tuple[str, str] | None = None
        self.question: dict[str, Any] | None = None

    # -- who is typing --------------------------------------------------------

    def become(self, persona: Persona) -> None:
        """Seat ``persona`` and print which flags let it in; one that cannot be seated
        leaves the current persona (at start, the default one) in place."""
        try:
            self.seat = seat(self.fake, persona)
        except PersonaError as exc:
            self.out.print(f"[yellow]{exc}[/yellow]")
            if self.seat is not None:
                return
            self.seat = seat(self.fake, Persona())
        self.print_persona()

    def print_persona(self) -> None:
        assert self.seat is not None
        self.out.print(f"as {self.seat.describe()}", markup=False, highlight=False)
        decisions = flag_decisions(self.bot, self.seat)
        if not decisions:
            self.out.print("  (no command checks a flag)")
        for decision in decisions:
            verdict = "on " if decision.allows else "off"
            gated = ", ".join(decision.commands)
            self.out.print(
                f"  flag {decision.key:<16} {verdict} ({decision.reason}): {gated}",
                markup=False,
                highlight=False,
            )

    # -- lines -------------------------------------------------------------

    async def handle(self, line: str) -> None:
        """A console line command, a slash command, or a message."""
        word = line.split(maxsplit=1)[0].lower() if line.strip() else ""
        if word == "/as":
            self.as_line(line)
        elif word == "/press":
            await self.press(line.split(maxsplit=1)[1] if " " in line.strip() else "")
        elif word == "/complete":
            await self.complete(line.strip()[len("/complete") :].strip())
        elif word == "/marker":
            await self.marker(line.strip()[len("/marker") :].strip())
        elif line.startswith("/"):
            await self.slash(line)
        else:
            await self.message(line)

    def as_line(self, line: str) -> None:
        try:
            args = shlex.split(line)[1:]
        except ValueError as exc:
            self.out.print(f"[yellow]/as: {exc}[/yellow]")
            return
        if not args:
            self.print_persona()
            return
        try:
            persona = parse_as(args)
        except click.ClickException as exc:
            self.out.print(f"[yellow]/as: {exc.format_message()}[/yellow]")
            self.out.print(f"usage: {AS_USAGE}", markup=False, highlight=False)
            return
        self.become(persona)

    async def message(self, line: str) -> None:
        """One message in; its replies (a question's buttons too) and trace out."""
        assert self.seat is not None
        message = self.fake.send_message(
            line, author=self.seat.user, channel_id=self.seat.channel_id
        )
        message_id = str(message["id"])
        root = await self._root(schema.MESSAGE_ID, message_id, stop_early=message_id)
        for reply in await self.fake.replies_to(int(message_id), timeout=0.0):
            self.out.print(f"bot> {describe(reply)}", markup=False, highlight=False)
            if buttons(reply):
                self.question = reply
        if root is None and self._asking(message_id):
            self.waiting = (schema.MESSAGE_ID, message_id)
            self.out.print("[dim](answer with /press and a button's label)[/dim]")
            return
        self.print_trace(root)

    async def slash(self, line: str) -> None:
        """One slash command in; the answer the user sees (after any deferral) and the trace."""
        assert self.seat is not None
        try:
            interaction = self.fake.send_command(
                line, author=self.seat.user, channel_id=self.seat.channel_id
            )
        except SlashError as exc:
            self.out.print(f"[yellow]{exc}[/yellow]")
            return
        answer = await interaction.wait(TRACE_WAIT_S)
        if answer is not None and buttons(answer):
            self.out.print(f"bot> {describe(answer)}", markup=False, highlight=False)
            self.question = answer
            self.waiting = (schema.INTERACTION_ID, str(interaction.id))
            self.out.print("[dim](answer with /press and a button's label)[/dim]")
            return
        root = await self._root(schema.INTERACTION_ID, str(interaction.id))
        if answer is not None:
            notes = [
                n
                for n, on in (("deferred", interaction.deferred), ("only you", ephemeral(answer)))
                if on
            ]
            suffix = f"  ({', '.join(notes)})" if notes else ""
            self.out.print(f"bot> {describe(answer)}{suffix}", markup=False, highlight=False)
        self.print_trace(root)

    async def press(self, label: str) -> None:
        """Click the button labelled ``label`` on the bot's open question (else on its latest
        message that has one)."""
        assert self.seat is not None
        wanted = label.strip().lower()
        candidates = [self.question] if self.question is not None else []
        for message in [*candidates, *reversed(self.fake.bot_messages)]:
            found = [b for b in buttons(message) if str(b.get("label", "")).lower() == wanted]
            if found:
                break
        else:
            self.out.print(f"[yellow]no button labelled {label.strip()!r} to press[/yellow]")
            return
        self.question = None
        interaction = self.fake.press(message, str(found[0]["custom_id"]), author=self.seat.user)
        answer = await interaction.wait(TRACE_WAIT_S)
        if self.waiting is None:
            if answer is not None:
                self.out.print(f"bot> {describe(answer)}", markup=False, highlight=False)
            return
        key, value = self.waiting
        self.waiting = None
        root = await self._root(key, value)
        # The question became the answer (edited in place): show it as it is now.
        current = self.fake.world.messages.get(int(message["id"]), message)
        self.out.print(f"bot> {describe(current)}", markup=False, highlight=False)
        self.print_trace(root)

    async def complete(self, line: str) -> None:
        """The choices Discord would offer while ``line`` (a slash command) is typed."""
        assert self.seat is not None
        try:
            interaction = self.fake.send_command(
                line, author=self.seat.user, channel_id=self.seat.channel_id, autocomplete=True
            )
        except SlashError as exc:
            self.out.print(f"[yellow]{exc}[/yellow]")
            return
        answer = await interaction.wait(TRACE_WAIT_S)
        choices = [str(c.get("name")) for c in (answer or {}).get("choices") or []]
        self.out.print(
            "choices> " + (" | ".join(choices) if choices else "(none)"),
            markup=False,
            highlight=False,
        )
        self.print_trace(await self._root(schema.INTERACTION_ID, str(interaction.id)))

    async def marker(self, text: str) -> None:
        """A deployment marker in Honeycomb, as ``chatops marker`` sends it."""
        from telemetry import honeycomb

        key = self.settings.honeycomb_marker_key
        if key is None:
            self.out.print("[yellow]HONEYCOMB_MARKER_KEY is not set[/yellow]")
            return
        message = text or "console marker"
        now_ns = time.time_ns()
        try:
            async with honeycomb.connect(
                self.settings.honeycomb_api_url, key.get_secret_value()
            ) as client:
                answer = await client.create_marker(
                    self.settings.service_name,
                    message=message,
                    url=None,
                    start_time=now_ns // 1_000_000_000,
                )
        except honeycomb.HoneycombError as exc:
            self.out.print(f"[yellow]marker not recorded: {exc}[/yellow]")
            return
        store = self.settings.span_store_path
        if store is not None:
            # As ``chatops marker`` does: ``!deploys`` and ``stats --heatmap`` read it there.
            from telemetry.store_read import Marker, record_marker

            remote_id = str(answer["id"]) if answer.get("id") else None
            marker = Marker(now_ns, message, message, None, remote_id)
            await asyncio.to_thread(record_marker, store, marker)
        self.out.print(
            f"marker {answer.get('id', '?')} {message!r} in Honeycomb dataset "
            f"{self.settings.service_name} ({self.settings.honeycomb_api_url})",
            markup=False,
            highlight=False,
        )

    # -- traces --------------------------------------------------------------

    async def _root(
        self, key: str, value: str, *, stop_early: str | None = None
    ) -> ReadableSpan | None:
        """The finished root span with ``key=value``; None after ``TRACE_WAIT_S`` or, with
        ``stop_early``, as soon as the bot asks that message a question (buttons)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + TRACE_WAIT_S
        root = self.recent.find_root(key, value)
        while root is None and loop.time() < deadline:
            if stop_early is not None and self._asking(stop_early):
                return None
            await asyncio.sleep(0.01)
            root = self.recent.find_root(key, value)
        return root

    def _asking(self, message_id: str) -> bool:
        """Whether a reply to ``message_id`` has buttons waiting to be pressed."""
        return any(
            buttons(m)
            for m in self.fake.bot_messages
            if str((m.get("message_reference") or {}).get("message_id")) == message_id
        )

    def print_trace(self, root: ReadableSpan | None) -> None:
        print_trace(root, self.recent, self.out)
