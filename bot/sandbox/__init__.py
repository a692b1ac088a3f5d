"""A protocol-level Discord fake: REST and gateway on one local port."""

from bot.sandbox.rest import RecordedRequest
from bot.sandbox.server import FakeDiscord
from bot.sandbox.state import FakeGuild

__all__ = ["FakeDiscord", "FakeGuild", "RecordedRequest"]
