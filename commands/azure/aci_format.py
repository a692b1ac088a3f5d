"""How container groups read in Discord: a list table, a status, logs in a code block.

Works on the SDK's models by attribute (``ContainerGroup``, ``Container``), so
this module imports no Azure package. Text that came from Azure (images, events,
logs) is put in code spans or blocks with its backticks defused, so it can never
close the block early or format the rest of the message.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import discord

from commands.azure.arm_client import Found

ZERO_WIDTH = "\u200b"
LAST_EVENTS = 3
EVENT_MAX_CHARS = 120


def defuse(text: str) -> str:
    """Break every backtick run so Azure's text cannot end a code span or block."""
    return text.replace("`", "`" + ZERO_WIDTH)


def plain(text: str) -> str:
    """Azure's text outside a code span: markdown escaped."""
    return discord.utils.escape_markdown(text)


def code(text: str) -> str:
    return f"`{defuse(text) or ' '}`"


def code_block(text: str) -> str:
    return f"```\n{defuse(text)}\n```"


def group_state(group: Any) -> str:
    """The group's runtime state (instance view), else its provisioning state."""
    view = getattr(group, "instance_view", None)
    return str(getattr(view, "state", None) or group.provisioning_state or "Unknown")


def container_state(container: Any) -> tuple[str, int]:
    view = container.instance_view
    current = getattr(view, "current_state", None)
    state = str(getattr(current, "state", None) or "Unknown")
    return state, int(getattr(view, "restart_count", None) or 0)


def images(group: Any) -> str:
    return ", ".join(sorted({str(c.image) for c in group.containers or []})) or "-"


def restarts(group: Any) -> int:
    return sum(container_state(c)[1] for c in group.containers or [])


def address(group: Any) -> str:
    ip = group.ip_address
    if ip is None:
        return "no public address"
    host = ip.fqdn or ip.ip or "-"
    ports = ", ".join(str(p.port) for p in ip.ports or [])
    text = f"{host} ({ip.ip})" if ip.fqdn and ip.ip else host
    return text + (f" ports {ports}" if ports else "")


def list_table(found: Sequence[Found], resource_groups: Sequence[str]) -> str:
    """One row per group: name, state, image, restart count (a code block table)."""
    if not found:
        return "No container groups in " + ", ".join(f"`{rg}`" for rg in resource_groups) + "."
    several = len(resource_groups) > 1
    rows = [("GROUP", "STATE", "RESTARTS", "IMAGE")]
    for item in found:
        name = f"{item.ref.resource_group}/{item.ref.name}" if several else item.ref.name
        rows.append((name, group_state(item.group), str(restarts(item.group)), images(item.group)))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    lines = ["  ".join(cell.ljust(widths[i]) for i, cell in enumerate(row[:3])) + "  " + row[3]
             for row in rows]  # fmt: skip
    return code_block("\n".join(line.rstrip() for line in lines))


def _when(moment: Any) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if isinstance(moment, datetime) else "?"


def status_text(found: Found) -> str:
    """The group, its address, and per container: state, restarts, image, last events."""
    group = found.group
    lines = [
        f"**{found.ref.name}** in `{found.ref.resource_group}`: {group_state(group)} "
        f"(provisioning {group.provisioning_state or '?'}) · {plain(address(group))}"
    ]
    for container in group.containers or []:
        state, count = container_state(container)
        current = getattr(container.instance_view, "current_state", None)
        start = getattr(current, "start_time", None)
        since = f" since {_when(start)}" if start else ""
        detail = getattr(current, "detail_status", None)
        lines.append(
            f"• {code(container.name)} {state}{since}, {count} restart(s), "
            f"image {code(container.image)}" + (f" ({plain(detail)})" if detail else "")
        )
        events = list(getattr(container.instance_view, "events", None) or [])[-LAST_EVENTS:]
        for event in events:
            message = (event.message or "")[:EVENT_MAX_CHARS]
            name = plain(event.name or "")
            lines.append(f"  {_when(event.last_timestamp)} {name}: {plain(message)}")
    return "\n".join(lines)
