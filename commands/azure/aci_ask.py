"""Asking before a change: the requester's own Confirm, or a second operator's Approve.

``!aci stop`` and ``!aci restart`` ask first. When the flag ``aci-two-person`` is on
for the group's resource group, the question needs a second operator instead of
the requester (docs/ops-loop.md). Either way the answer lands on the command's
root span (``app.azure.confirmation``, and for two-person the approver), and a
refused press is handed to the audit callback; the cog decides what to do next.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import discord
from discord.ext import commands

from commands.azure.arm_client import Found
from commands.ops.audit import Actor, AuditEntry
from commands.toolkit.approve import Approve
from commands.toolkit.confirm import Confirm, Decision
from commands.toolkit.flag_checks import permission_flag, two_person_required
from commands.toolkit.replies import edit, reply, update
from telemetry import schema
from telemetry.spans import current_trace

Ctx = commands.Context[commands.Bot]
Audit = Callable[[AuditEntry], None]

OPERATOR_FLAG = "aci-operator"
TWO_PERSON_FLAG = permission_flag("aci-two-person")


@dataclass(frozen=True)
class Verb:
    """How a change reads in chat: ``restart`` / ``Restarting`` / ``restarted``."""

    name: str
    doing: str
    done: str


RESTART = Verb("restart", "Restarting", "restarted")
START = Verb("start", "Starting", "started")
STOP = Verb("stop", "Stopping", "stopped")


@dataclass(frozen=True)
class Question:
    """One change to ask about: who asks (``ctx``), which group, and how it reads."""

    ctx: Ctx
    found: Found
    verb: Verb
    ack: str
    action: str
    resource: str


async def ask(
    question: Question, timeout_s: float, audit: Audit
) -> tuple[discord.Message, Actor | None] | str:
    """Confirmation, or a second operator's approval when ``aci-two-person`` is on for
    the resource group. The acknowledgement and who approved; else what happened
    (``cancelled``, ``timed out``) for the audit."""
    resource_group = question.found.ref.resource_group
    if await two_person_required(question.ctx, TWO_PERSON_FLAG, resource_group):
        return await _approval(question, timeout_s, audit)
    confirmed = await _confirm(question, timeout_s, audit)
    return confirmed if isinstance(confirmed, str) else (confirmed, None)


async def _approval(
    question: Question, timeout_s: float, audit: Audit
) -> tuple[discord.Message, Actor | None] | str:
    ctx, found, verb = question.ctx, question.found, question.verb
    name = found.ref.name
    requester = Actor.of(ctx.author)

    def refused(interaction: discord.Interaction[Any], why: str) -> None:
        detail = "own request" if why == "requester" else "not an operator"
        audit(
            AuditEntry.here(
                Actor.of(interaction.user), f"{question.action} approve", question.resource,
                "denied", detail=f"{detail}; requested by {requester}",
            )
        )  # fmt: skip

    view = Approve(ctx.author.id, timeout_s, approver_flag=OPERATOR_FLAG, on_refused=refused)
    message = await reply(
        ctx,
        f"{ctx.author.display_name} asks to {verb.name} container group `{name}` in "
        f"`{found.ref.resource_group}`. Two-person rule: another operator must approve "
        f"within {timeout_s:g} s.",
        view=view,
    )
    answer = await view.wait_for_answer()
    trace = current_trace()
    if trace is not None:
        trace.span.set_attribute(schema.AZURE_CONFIRMATION, answer.decision.value)
        trace.span.set_attribute(schema.AZURE_TWO_PERSON, True)
    if answer.decision is Decision.TIMED_OUT:
        await edit(
            message,
            f"No approval within {timeout_s:g} s: `{name}` was not {verb.done}.",
            clear_view=True,
        )
        return "timed out"
    assert answer.interaction is not None
    try:
        if answer.decision is Decision.CANCELLED:
            await update(answer.interaction, f"Cancelled: `{name}` was not {verb.done}.")
            return "cancelled"
        approver = Actor.of(answer.interaction.user)
        if trace is not None:
            trace.span.set_attribute(schema.AZURE_APPROVER_ID, str(approver.user_id))
            trace.span.set_attribute(schema.AZURE_APPROVER_NAME, approver.name)
        await update(answer.interaction, f"{question.ack}\nApproved by {approver}.")
    finally:
        view.answered()
    return message, approver


async def _confirm(question: Question, timeout_s: float, audit: Audit) -> discord.Message | str:
    """Ask; on Confirm the question becomes the acknowledgement. Else what happened
    instead (``cancelled``, ``timed out``)."""
    ctx, found, verb = question.ctx, question.found, question.verb
    name = found.ref.name
    requester = Actor.of(ctx.author)
    resource = f"{found.ref.resource_group}/{name}"

    def refused(interaction: discord.Interaction[Any]) -> None:
        audit(
            AuditEntry.here(
                Actor.of(interaction.user), f"aci {verb.name} confirm", resource, "denied",
                detail=f"not the requester; requested by {requester}",
            )
        )  # fmt: skip

    view = Confirm(ctx.author.id, timeout_s, on_refused=refused)
    message = await reply(
        ctx,
        f"{verb.name.title()} container group `{name}` in `{found.ref.resource_group}`? "
        f"Only {ctx.author.display_name} can answer, within {timeout_s:g} s.",
        view=view,
    )
    answer = await view.wait_for_answer()
    trace = current_trace()
    if trace is not None:
        trace.span.set_attribute(schema.AZURE_CONFIRMATION, answer.decision.value)
    if answer.decision is Decision.TIMED_OUT:
        await edit(
            message,
            f"No answer within {timeout_s:g} s: `{name}` was not {verb.done}.",
            clear_view=True,
        )
        return "timed out"
    assert answer.interaction is not None
    try:
        if answer.decision is Decision.CANCELLED:
            await update(answer.interaction, f"Cancelled: `{name}` was not {verb.done}.")
            return "cancelled"
        await update(answer.interaction, question.ack)
    finally:
        view.answered()
    return message
