"""An operator's HTTP endpoint, like the seed's Azure Function behind ``!relationships``.

``GET /api/relationships?user=&target=`` answers JSON; ``POST /api/echo`` returns
the JSON body it got; ``GET /api/redirect?to=URL`` answers 302 to ``URL``;
``GET /api/users/{name}/profile`` names the user it got. The recorded headers show
whether ``traceparent`` arrived, the recorded raw paths what the URL really was.
"""

from __future__ import annotations

from aiohttp import web

from bot.sandbox.fakes.api import FakeApi


class FakeFunction(FakeApi):
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/api/relationships", self.relationships),
            web.post("/api/echo", self.echo),
            web.get("/api/text", self.text),
            web.get("/api/redirect", self.redirect),
            web.get("/api/users/{name}/profile", self.profile),
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

    async def redirect(self, request: web.Request) -> web.Response:
        raise web.HTTPFound(request.query["to"])

    async def profile(self, request: web.Request) -> web.Response:
        return web.Response(text=f"profile of {request.match_info['name']}")
