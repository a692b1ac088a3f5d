"""The Honeycomb configuration-API fake ships with the package: ``chatops console`` runs it too."""

from bot.sandbox.fakes.honeycomb_api import FakeHoneycomb, Recorded

__all__ = ["FakeHoneycomb", "Recorded"]
