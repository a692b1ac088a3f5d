"""Who a message notifies, under Discord's ``allowed_mentions`` rules.

The bot must never ping people by accident (an ``@everyone`` echoed back from a
user's input is the classic). Tests check that with ``FakeDiscord.would_ping``,
so the rules live here, once, the way Discord documents them:

* no ``allowed_mentions`` at all: users, roles and @everyone in the content
  notify, and a reply notifies the replied-to author;
* with ``allowed_mentions``: only what ``parse`` names (``users``, ``roles``,
  ``everyone``) or what the ``users``/``roles`` id lists name, and the replied-to
  author only with ``replied_user: true``.
"""

from __future__ import annotations

from bot.sandbox.state import EVERYONE_MENTION, JSON, ROLE_MENTION, USER_MENTION


def pinged(message: JSON, replied_author: JSON | None) -> tuple[list[int], list[int], bool]:
    """User ids, role ids and whether @everyone/@here would notify."""
    allowed: JSON | None = message.get("allowed_mentions")
    content: str = message.get("content") or ""
    if allowed is None:
        parse = {"users", "roles", "everyone"}
        allowed_users: set[int] = set()
        allowed_roles: set[int] = set()
        replied_user = True
    else:
        parse = set(allowed.get("parse") or [])
        allowed_users = {int(u) for u in allowed.get("users") or []}
        allowed_roles = {int(r) for r in allowed.get("roles") or []}
        replied_user = bool(allowed.get("replied_user", False))

    users: list[int] = []
    for match in USER_MENTION.finditer(content):
        uid = int(match.group(1))
        if ("users" in parse or uid in allowed_users) and uid not in users:
            users.append(uid)
    if replied_user and replied_author is not None and not replied_author.get("bot"):
        uid = int(replied_author["id"])
        if uid not in users:
            users.append(uid)
    roles: list[int] = []
    for match in ROLE_MENTION.finditer(content):
        rid = int(match.group(1))
        if ("roles" in parse or rid in allowed_roles) and rid not in roles:
            roles.append(rid)
    everyone = "everyone" in parse and EVERYONE_MENTION.search(content) is not None
    return users, roles, everyone


def would_ping(message: JSON, replied_author: JSON | None) -> bool:
    """True if posting ``message`` would notify anyone."""
    users, roles, everyone = pinged(message, replied_author)
    return bool(users or roles or everyone)
