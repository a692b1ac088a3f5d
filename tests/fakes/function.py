"""The operator's-endpoint fake ships with the package: ``chatops console`` runs it too."""

from bot.sandbox.fakes.function import FakeFunction

__all__ = ["FakeFunction"]
