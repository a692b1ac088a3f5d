"""The container watch: poll the configured container groups, post state transitions.

Every ``AZURE_WATCH_INTERVAL_S`` one poll (a root span ``azure.watch.poll``, with the
ARM calls as children) reads every group in the configured resource groups and
compares each container with the previous poll. A transition is posted to
``ALERT_CHANNEL_ID`` once, with the container's last log lines:

- a container leaves ``Running`` (``Waiting``: a crash loop; ``Terminated``);
- its restart count goes up;
- the group's provisioning becomes ``Failed``.

The first poll after the bot starts only records the baseline (``app.watch.baseline``):
a bot that restarts while a container is already crash-looping does not repost it.
A poll posts at most ``MAX_POSTS`` transitions and counts the rest in one line.

Throttling: a poll that ARM answers with 429 (after the SDK's own retries) doubles
the wait before the next poll, at least the ``Retry-After``, up to ``MAX_BACKOFF``
intervals (``app.watch.backoff_s``); the first good poll restores the interval. The
watch shares no lock or queue with the commands, so a throttled watch only delays
itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass
from typing import Any

import discord

from commands.azure.aci_format import code_block
from commands.azure.arm_client import Aci, AzureError, Found, GroupRef, retry_after_s
from commands.toolkit.replies import send_to
from telemetry import schema
from telemetry.schema import Outcome
from telemetry.spans import root_span

log = logging.getLogger(__name__)

MAX_POSTS = 5
LOG_LINES = 10
LOG_CHARS = 1200
MAX_BACKOFF = 16
RUNNING = "Running"


@dataclass(frozen=True)
class ContainerState:
    state: str
    restarts: int
    detail: str


@dataclass(frozen=True)
class GroupState:
    provisioning: str
    containers: dict[str, ContainerState]


@dataclass(frozen=True)
class Transition:
    ref: GroupRef
    container: str | None
    what: str


def group_state(found: Found) -> GroupState:
    containers: dict[str, ContainerState] = {}
    for container in found.group.containers or []:
        view = container.instance_view
        current = getattr(view, "current_state", None)
        containers[str(container.name)] = ContainerState(
            str(getattr(current, "state", None) or "Unknown"),
            int(getattr(view, "restart_count", None) or 0),
            str(getattr(current, "detail_status", None) or ""),
        )
    return GroupState(str(found.group.provisioning_state or "Unknown"), containers)


def transitions(
    before: dict[GroupRef, GroupState], after: dict[GroupRef, GroupState]
) -> list[Transition]:
    """What changed for the worse between two polls (a group seen first is its own baseline,
    unless its provisioning failed)."""
    found: list[Transition] = []
    for ref, now in after.items():
        then = before.get(ref)
        if now.provisioning == "Failed" and (then is None or then.provisioning != "Failed"):
            found.append(Transition(ref, None, "provisioning **Failed**"))
        if then is None:
            continue
        for name, state in now.containers.items():
            old = then.containers.get(name)
            if old is None:
                continue
            if old.state == RUNNING and state.state != RUNNING:
                detail = f" ({state.detail})" if state.detail else ""
                found.append(Transition(ref, name, f"{old.state} \u2192 **{state.state}**{detail}"))
            if state.restarts > old.restarts:
                found.append(
                    Transition(ref, name, f"restarts {old.restarts} \u2192 **{state.restarts}**")
                )
    return found


class ContainerWatch:
    """One background task per bot: ``start`` after set-up, ``close`` at shutdown."""

    def __init__(
        self, aci: Aci, client: discord.Client, *, channel_id: int, interval_s: float
    ) -> None:
        self.aci = aci
        self.client = client
        self.channel_id = channel_id
        self.interval_s = interval_s
        self.delay_s = interval_s
        self.baseline: dict[GroupRef, GroupState] | None = None
        self.polls = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="container-watch")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _run(self) -> None:
        await self.client.wait_until_ready()
        while True:
            try:
                await self.poll()
            except Exception:
                log.exception("container watch poll failed")
            await asyncio.sleep(self.delay_s)

    async def poll(self) -> None:
        """One poll in its own root span; sets ``delay_s`` for the next."""
        attributes: dict[str, Any] = {schema.WATCH_BASELINE: self.baseline is None}
        with root_span(schema.WATCH_SPAN, attributes, {}) as poll_trace:
            self.polls += 1
            try:
                found = await self.aci.list_groups()
            except AzureError as exc:
                cause = exc.__cause__
                if getattr(cause, "status_code", None) == 429:
                    wait = retry_after_s(cause) if cause is not None else None
                    self.delay_s = min(
                        self.interval_s * MAX_BACKOFF, max(self.delay_s * 2, wait or 0.0)
                    )
                    poll_trace.span.set_attribute(schema.WATCH_BACKOFF_S, self.delay_s)
                    poll_trace.record_error(exc, Outcome.COOLDOWN)
                else:
                    poll_trace.record_error(exc)
                return
            self.delay_s = self.interval_s
            now = {f.ref: group_state(f) for f in found}
            poll_trace.span.set_attribute(schema.WATCH_GROUPS, len(now))
            if self.baseline is None:
                self.baseline = now
                return
            changes = transitions(self.baseline, now)
            self.baseline = now
            poll_trace.span.set_attribute(schema.WATCH_TRANSITIONS, len(changes))
            await self._post(changes)

    async def _post(self, changes: list[Transition]) -> None:
        if not changes:
            return
        channel = self.client.get_channel(self.channel_id)
        if not isinstance(channel, discord.abc.Messageable):
            log.warning("ALERT_CHANNEL_ID %s is not a channel I can see", self.channel_id)
            return
        for change in changes[:MAX_POSTS]:
            await send_to(channel, await self._describe(change))
        if len(changes) > MAX_POSTS:
            await send_to(
                channel,
                f"\u2026 and {len(changes) - MAX_POSTS} more container transitions this poll "
                "(`!aci list` shows them).",
            )

    async def _describe(self, change: Transition) -> str:
        where = f"`{change.ref.resource_group}/{change.ref.name}`"
        if change.container is None:
            return f"\U0001f6a8 {where}: {change.what}"
        text = f"\U0001f6a8 {where} container `{change.container}`: {change.what}"
        try:
            logs = await self.aci.logs(change.ref, change.container, LOG_LINES)
        except AzureError as exc:
            return f"{text}\n(no logs: {exc})"
        logs = logs.rstrip("\n")[-LOG_CHARS:]
        return f"{text}\n{code_block(logs)}" if logs.strip() else f"{text}\n(no log output)"
