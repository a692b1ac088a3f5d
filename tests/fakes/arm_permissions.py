"""ARM's permissions API for resource groups, over TLS: what ``chatops doctor`` reads.

``GET /subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Authorization/permissions``
(api-version 2022-04-01) answers the caller's effective role grants on the group,
``{"value": [{"actions": [...], "notActions": [...], "dataActions": [], "notDataActions": []}]}``,
as documented for "Permissions - List For Resource Group". A missing bearer token
is a 401, a group not in ``grants`` a 404 ``ResourceGroupNotFound``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web

from tests.fakes.arm import TOKEN, arm_error
from tests.fakes.tls import SelfSignedCertificate

API_VERSION = "2022-04-01"
CONTRIBUTOR = {"actions": ["*"], "notActions": ["Microsoft.Authorization/*/Write"]}
READER = {"actions": ["*/read"], "notActions": []}


@dataclass
class FakeArmPermissions:
    certificate: SelfSignedCertificate
    subscription: str = "00000000-0000-0000-0000-000000000001"
    token: str = TOKEN
    # Resource group -> the role grants the caller holds there.
    grants: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    paths: list[str] = field(default_factory=list)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    async def __aenter__(self) -> Self:
        app = web.Application()
        app.router.add_get(
            "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Authorization/permissions",
            self.permissions,
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, "127.0.0.1", 0, ssl_context=self.certificate.server_context()
        )
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def permissions(self, request: web.Request) -> web.Response:
        self.paths.append(request.path)
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return arm_error(401, "AuthenticationFailed", "Authentication failed.")
        if request.query.get("api-version") != API_VERSION:
            return arm_error(400, "InvalidApiVersionParameter", "The api-version is invalid.")
        rg = request.match_info["rg"]
        if request.match_info["sub"] != self.subscription or rg not in self.grants:
            return arm_error(
                404, "ResourceGroupNotFound", f"Resource group '{rg}' could not be found."
            )
        value = [{"dataActions": [], "notDataActions": [], **grant} for grant in self.grants[rg]]
        return web.json_response({"value": value})
