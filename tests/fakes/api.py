"""The base for fake HTTP APIs ships with the package (``bot.sandbox.fakes.api``)."""

from bot.sandbox.fakes.api import FakeApi, Fault, Handler, Seen

__all__ = ["FakeApi", "Fault", "Handler", "Seen"]
