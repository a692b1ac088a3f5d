"""The cat-fact fake ships with the package: ``chatops console`` runs it too."""

from bot.sandbox.fakes.catfact import FACT, FakeCatFacts

__all__ = ["FACT", "FakeCatFacts"]
