"""``hybrid_command`` (and ``hybrid_group``, ``subcommand``) with signatures mypy can check.

discord.py's own decorator is generic in the context type, which appears only
in its argument, so mypy solves it to ``Never`` and rejects every callback.
This wrapper pins the context to ``commands.Context[Any]``; at runtime it is
discord.py's decorator, unchanged: one definition serves ``!name`` and ``/name``.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any

from discord.ext import commands

Callback = Callable[..., Coroutine[Any, Any, None]]


def hybrid_command(**attrs: Any) -> Callable[[Callback], commands.HybridCommand[Any, ..., None]]:
    """``commands.hybrid_command(**attrs)``, typed for mypy --strict."""
    decorator: Callable[[Callback], commands.HybridCommand[Any, ..., None]]
    decorator = commands.hybrid_command(**attrs)
    return decorator


def hybrid_group(**attrs: Any) -> Callable[[Callback], commands.HybridGroup[Any, ..., None]]:
    """``commands.hybrid_group(**attrs)``, typed the same way (``!name sub`` and ``/name sub``)."""
    decorator: Callable[[Callback], commands.HybridGroup[Any, ..., None]]
    decorator = commands.hybrid_group(**attrs)
    return decorator


def subcommand(
    group: commands.HybridGroup[Any, ..., None], **attrs: Any
) -> Callable[[Callback], commands.HybridCommand[Any, ..., None]]:
    """``group.command(**attrs)``, typed for mypy --strict: a hybrid subcommand of ``group``."""
    decorator: Callable[[Callback], commands.HybridCommand[Any, ..., None]]
    decorator = group.command(**attrs)
    return decorator
