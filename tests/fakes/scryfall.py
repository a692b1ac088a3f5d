"""The Scryfall fake ships with the package: ``chatops console`` runs it too."""

from bot.sandbox.fakes.scryfall import (
    AMBIGUOUS,
    BAD_QUERY,
    DELVER,
    DRAGONS,
    NO_MATCH,
    FakeScryfall,
    card,
    error,
)

__all__ = [
    "AMBIGUOUS",
    "BAD_QUERY",
    "DELVER",
    "DRAGONS",
    "NO_MATCH",
    "FakeScryfall",
    "card",
    "error",
]
