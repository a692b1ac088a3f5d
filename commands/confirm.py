"""Confirm/Cancel buttons that only the person who asked can press.

discord.py runs a button's callback in a task of its own, outside the message's
trace. So the callbacks here only hand the press to the waiting command; the
command (still inside its root span) answers the interaction, and every reply
stays a child of the message's trace.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import discord

from telemetry.send import tell_privately

CONFIRM_ID = "aci:confirm"
CANCEL_ID = "aci:cancel"


class Decision(StrEnum):
    CONFIRMED = "confirmed"
    CANCELLED = "cancelled"
    TIMED_OUT = "timed_out"


@dataclass(frozen=True)
class Answer:
    decision: Decision
    interaction: discord.Interaction[Any] | None


class Confirm(discord.ui.View):
    """Two buttons; ``wait_for_answer`` returns the requester's press or a timeout."""

    def __init__(self, requester_id: int, timeout_s: float) -> None:
        # The view's own timeout is a backstop; ``wait_for_answer`` bounds the wait.
        super().__init__(timeout=timeout_s + 5)
        self.requester_id = requester_id
        self.timeout_s = timeout_s
        self._presses: asyncio.Queue[tuple[bool, discord.Interaction[Any]]] = asyncio.Queue()

    @discord.ui.button(label="Confirm", style=discord.ButtonStyle.danger, custom_id=CONFIRM_ID)
    async def confirm(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]
    ) -> None:
        self._presses.put_nowait((True, interaction))

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id=CANCEL_ID)
    async def cancel(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]
    ) -> None:
        self._presses.put_nowait((False, interaction))

    async def wait_for_answer(self) -> Answer:
        """The requester's decision; others pressing are told privately and ignored."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        try:
            while True:
                left = deadline - loop.time()
                if left <= 0:
                    return Answer(Decision.TIMED_OUT, None)
                try:
                    confirmed, interaction = await asyncio.wait_for(self._presses.get(), left)
                except TimeoutError:
                    return Answer(Decision.TIMED_OUT, None)
                if interaction.user.id != self.requester_id:
                    await tell_privately(interaction, "Only the person who asked can answer this.")
                    continue
                return Answer(Decision.CONFIRMED if confirmed else Decision.CANCELLED, interaction)
        finally:
            self.stop()
