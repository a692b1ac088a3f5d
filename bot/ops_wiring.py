"""Wiring for the ops loop (docs/ops-loop.md): the audit poster and what feeds it from outside
a command (a flags reload that changed a permission flag), built from ``Settings``.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from bot.config import Settings
from commands.ops.audit import Actor, AuditEntry, AuditLog
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
