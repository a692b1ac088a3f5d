"""Confirm/Cancel buttons that only the person who asked can press.

A press is an interaction of its own, often seconds after the command: as a
``TracedView`` it gets its own root span (``component aci:confirm``), linked to
the trace of the command that asked. The callbacks only hand the requester's
press to the waiting command and wait until it has been answered; the command
(still inside its root span) answers the interaction, so the acknowledgement
and the final edit stay children of the command's trace, and the press's span
covers the time from click to answer. Anyone else pressing is told privately,
inside the press's own span (outcome ``denied``), and the question stays open.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import discord

from commands.toolkit.replies import tell_privately
from commands.toolkit.views import TracedView
from telemetry.schema import Outcome
from telemetry.spans import current_trace

CONFIRM_ID = "aci:confirm"
CANCEL_ID = "aci:cancel"
# How long a press's span waits for the command to answer it (Discord allows 3 s).
ANSWER_WAIT_S = 3.0
NOT_YOURS = "Only the person who asked can answer this."


class Decision(StrEnum):
    CONFIRMED = "confirmed"
    # Two-person approval (``commands.toolkit.approve``): a second operator pressed Approve.
    APPROVED = "approved"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class Answer:
    decision: Decision
    interaction: discord.Interaction[Any] | None


@dataclass
class Press:
    """A requester's press, handed from the button's task to the waiting command."""

    confirmed: bool
    interaction: discord.Interaction[Any]
    handled: asyncio.Event = field(default_factory=asyncio.Event)


class Question(TracedView):
    """What a confirmation and an approval share: the presses handed over, the bounded
    wait for one, and letting its span end once the command has answered it.

    A subclass adds its buttons (each calling ``hand_over``), says who may press
    (``interaction_check``) and which decision a positive press is (``YES``).
    """

    YES = Decision.CONFIRMED

    def __init__(self, requester_id: int, timeout_s: float) -> None:
        # The view's own timeout is a backstop; ``wait_for_answer`` bounds the wait.
        super().__init__(timeout=timeout_s + 5)
        self.requester_id = requester_id
        self.timeout_s = timeout_s
        self._presses: asyncio.Queue[Press] = asyncio.Queue()
        self._taken: Press | None = None

    async def hand_over(self, confirmed: bool, interaction: discord.Interaction[Any]) -> None:
        """Give the press to the waiting command and wait (bounded) until it has answered it."""
        press = Press(confirmed, interaction)
        self._presses.put_nowait(press)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(press.handled.wait(), ANSWER_WAIT_S)

    async def wait_for_answer(self) -> Answer:
        """``YES`` or ``CANCELLED`` as pressed, or ``TIMED_OUT`` after ``timeout_s``."""
        try:
            press = await asyncio.wait_for(self._presses.get(), self.timeout_s)
        except TimeoutError:
            self.stop()
            return Answer(Decision.TIMED_OUT, None)
        self.stop()
        self._taken = press
        return Answer(self.YES if press.confirmed else Decision.CANCELLED, press.interaction)

    def answered(self) -> None:
        """The command has answered the press: let the press's span end."""
        if self._taken is not None:
            self._taken.handled.set()


class Confirm(Question):
    """Two buttons; ``wait_for_answer`` returns the requester's press or a timeout."""

    def __init__(
        self,
        requester_id: int,
        timeout_s: float,
        *,
        on_refused: Callable[[discord.Interaction[Any]], None] | None = None,
    ) -> None:
        super().__init__(requester_id, timeout_s)
        # Told about each refused press (the audit channel posts it).
        self.on_refused = on_refused

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        """Only the requester; others are told privately (in the press's own span)."""
        if interaction.user.id == self.requester_id:
            return True
        press_trace = current_trace()
        if press_trace is not None:
            press_trace.set_outcome(Outcome.DENIED)
        if self.on_refused is not None:
            self.on_refused(interaction)
        await tell_privately(interaction, NOT_YOURS)
        return False

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger, custom_id=CONFIRM_ID)
    async def confirm(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]
    ) -> None:
        await self.hand_over(True, interaction)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id=CANCEL_ID)
    async def cancel(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]
    ) -> None:
        await self.hand_over(False, interaction)
