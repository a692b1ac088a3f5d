"""Wiring for the ops loop (docs/ops-loop.md), built from ``Settings``: the audit poster and
what feeds it from outside a command (a flags reload that changed a permission flag), and
the container watch.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from bot.config import Settings
from commands.azure.arm_client import Aci
from commands.azure.watch import ContainerWatch
from commands.ops.alerts import AlertPoster
from commands.ops.audit import Actor, AuditEntry, AuditLog
from commands.ops.open_alerts import OpenAlerts
from commands.toolkit.flag_checks import PERMISSION_FLAGS
from commands.toolkit.flags import on_flags_changed

log = logging.getLogger(__name__)

FLAGS_ACTOR = Actor("flags reload")


def build_audit(client: discord.Client, settings: Settings) -> AuditLog | None:
    """The audit poster for ``AUDIT_CHANNEL_ID``, or None when it is unset."""
    if settings.audit_channel_id is None:
        return None
    return AuditLog(
        client,
        settings.audit_channel_id,
        per_minute=settings.audit_posts_per_minute,
        links=settings.trace_links,
        dataset=settings.service_name,
    )


def audit_flag_changes(audit: AuditLog, settings: Settings) -> None:
    """Post a reload that changed a permission flag (any thread finds it; the loop posts)."""
    loop = asyncio.get_running_loop()
    source = (
        str(settings.flags_file)
        if settings.flags_provider == "file"
        else f"flagd {settings.flagd_host}"
    )

    def changed(keys: list[str]) -> None:
        permissions = sorted(k for k in keys if k in PERMISSION_FLAGS)
        if not permissions:
            return
        entry = AuditEntry(
            FLAGS_ACTOR,
            "flags reload",
            source,
            "changed",
            detail="permission flags changed: " + ", ".join(f"`{k}`" for k in permissions),
        )
        loop.call_soon_threadsafe(audit.record, entry)

    on_flags_changed(changed)


def build_watch(
    client: discord.Client, aci: Aci | None, settings: Settings
) -> ContainerWatch | None:
    """The container watch, when ``AZURE_WATCH_INTERVAL_S``, ``ALERT_CHANNEL_ID`` and Azure
    are all configured. The CLI refuses the interval without the channel at start-up
    (``check_bot_requirements``); without Azure it is logged once and not started."""
    interval = settings.azure_watch_interval_s
    if interval is None:
        return None
    if aci is None or settings.alert_channel_id is None:
        log.warning(
            "AZURE_WATCH_INTERVAL_S is set but %s is not: no container watch",
            "ALERT_CHANNEL_ID" if aci is not None else "AZURE_SUBSCRIPTION_ID",
        )
        return None
    return ContainerWatch(aci, client, channel_id=settings.alert_channel_id, interval_s=interval)


def build_alerts(client: discord.Client, settings: Settings) -> AlertPoster | None:
    """Where Honeycomb alerts are posted (``ALERT_CHANNEL_ID``), or None."""
    if settings.alert_channel_id is None:
        return None
    # Open alerts share the receiver's state file, so a resolution after a restart
    # edits the original post (without the receiver no alert ever arrives).
    store = None
    if settings.honeycomb_webhook_secret is not None:
        store = OpenAlerts.open(settings.honeycomb_hook_state_db)
    return AlertPoster(client, settings.alert_channel_id, store)
