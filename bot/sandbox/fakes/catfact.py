"""The public cat-fact API: ``GET /fact`` answers ``{"fact": ..., "length": ...}``."""

from __future__ import annotations

from aiohttp import web

from bot.sandbox.fakes.api import FakeApi

FACT = "Cats sleep for around thirteen to sixteen hours a day."


class FakeCatFacts(FakeApi):
    def routes(self) -> list[web.RouteDef]:
        return [web.get("/fact", self.fact)]

    async def fact(self, request: web.Request) -> web.Response:
        return web.json_response({"fact": FACT, "length": len(FACT)})
