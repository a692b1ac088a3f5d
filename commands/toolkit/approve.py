"""Approve/Cancel buttons for a change that needs a second person (two-person approval).

The same shape as ``confirm.Confirm`` (each press its own linked root span; the
waiting command answers the press so the acknowledgement stays in its trace),
with other rules about who may press:

- **Approve**: anyone the approver flag lets in, *except the requester*. The
  requester's own press, or a press by someone without the flag, is refused
  privately (outcome ``denied`` on the press's span) and reported through
  ``on_refused`` (the audit channel hears about it); the question stays open.
- **Cancel**: only the requester (as with ``Confirm``).

No answer within ``timeout_s`` expires the request, as a confirmation does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import discord

from commands.toolkit.confirm import NOT_YOURS, Decision, Question
from commands.toolkit.flag_checks import allowed
from commands.toolkit.replies import tell_privately
from commands.toolkit.views import custom_id_of
from telemetry.schema import Outcome
from telemetry.spans import current_trace

APPROVE_ID = "aci:approve"
CANCEL_ID = "aci:approval-cancel"
OWN_REQUEST = "You asked for this: a second operator has to approve it."
NOT_AN_APPROVER = "Only an operator can approve this."

#: ``on_refused(interaction, why)``: a press was refused (``requester`` or ``not_operator``).
Refused = Callable[[discord.Interaction[Any], str], None]


class Approve(Question):
    """Two buttons; ``wait_for_answer`` returns an approval (by someone else), a
    cancellation, or a timeout."""

    YES = Decision.APPROVED

    def __init__(
        self,
        requester_id: int,
        timeout_s: float,
        *,
        approver_flag: str,
        on_refused: Refused | None = None,
    ) -> None:
        super().__init__(requester_id, timeout_s)
        self.approver_flag = approver_flag
        self.on_refused = on_refused

    async def interaction_check(self, interaction: discord.Interaction[Any], /) -> bool:
        is_requester = interaction.user.id == self.requester_id
        if custom_id_of(interaction) != APPROVE_ID:
            if is_requester:
                return True
            return await self._refuse(interaction, NOT_YOURS, None)
        if is_requester:
            return await self._refuse(interaction, OWN_REQUEST, "requester")
        if not await allowed(interaction, self.approver_flag):
            return await self._refuse(interaction, NOT_AN_APPROVER, "not_operator")
        return True

    async def _refuse(
        self, interaction: discord.Interaction[Any], text: str, why: str | None
    ) -> bool:
        press_trace = current_trace()
        if press_trace is not None:
            press_trace.set_outcome(Outcome.DENIED)
        if why is not None and self.on_refused is not None:
            self.on_refused(interaction, why)
        await tell_privately(interaction, text)
        return False

    @discord.ui.button(label="Approve", style=discord.ButtonStyle.danger, custom_id=APPROVE_ID)
    async def approve(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]
    ) -> None:
        await self.hand_over(True, interaction)

    @discord.ui.button(label="Cancel", style=discord.ButtonStyle.secondary, custom_id=CANCEL_ID)
    async def cancel(
        self, interaction: discord.Interaction[Any], button: discord.ui.Button[Any]
    ) -> None:
        await self.hand_over(False, interaction)
