"""An operator's HTTP endpoint, like the seed's Azure Function behind ``!relationships``.

``GET /api/relationships?user=&target=`` answers JSON; ``POST /api/echo`` returns
the JSON body it got. The recorded headers show whether ``traceparent`` arrived.
"""

from __future__ import annotations

from aiohttp import web

from tests.fakes.api import FakeApi


class FakeFunction(FakeApi):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/relationships", self.relationships),
            web.post("/api/echo", self.echo),
            web.get("/api/text", self.text),
        ]

    async def relationships(self, request: web.Request) -> web.Response:
        user = request.query.get("user", "")
        target = request.query.get("target", "")
        return web.json_response(
            {"result": {"summary": f"{user} and {target} are friends"}, "score": 7}
        )

    async def echo(self, request: web.Request) -> web.Response:
        return web.json_response(await request.json())

    async def text(self, request: web.Request) -> web.Response:
        return web.Response(text="  plain answer  ")
