"""The sharded container group of ``infra/aci/main.bicep`` in the fake ARM, for deploy tests.

``bot-0`` and ``bot-1`` (each its own health port) and the ``tls`` sidecar (another image).
Each container's ``/readyz`` is a local server that answers from the fake ARM's state, the
way the bot would: 200 only while that container runs an image that works.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from aiohttp import web

from bot.azure_wiring import AzureOptions, build_aci
from bot.config import Settings
from bot.deploy import DeployReport, DeployRequest, deploy
from tests.fakes.arm import FakeArm, StaticCredential
from tests.fakes.tls import SelfSignedCertificate

RG = "chatops-rg"
PREVIOUS = "chatops.azurecr.io/chatops-bot:1.0.0"
IMAGE = "chatops.azurecr.io/chatops-bot:2.0.0"
CADDY = "chatops.azurecr.io/caddy:2"
BOTS = ("bot-0", "bot-1")
CADDYFILE = "chatops.example.org {\n\thandle {\n\t\trespond 404\n\t}\n}\n"
COMMANDS = '[[command]]\nname = "relationships"\n'
ENV = {"DISCORD_TOKEN": "new-secret", "COMMANDS__COMMANDS_TOML": COMMANDS}


class Readyz:
    """One container's ``/readyz``: 200 when ``healthy(image)`` for its current image."""

    def __init__(self, arm: FakeArm, name: str, healthy: Callable[[str], bool]) -> None:
        self.arm, self.name, self.healthy = arm, name, healthy
        self.answers: list[tuple[int, dict[str, str]]] = []  # status, every container's image
        self.port = 0
        self.runner: web.AppRunner | None = None

    def images(self) -> dict[str, str]:
        group = self.arm.groups[(RG, "bot")]
        return {c["name"]: c["properties"]["image"] for c in group["properties"]["containers"]}

    async def readyz(self, _request: web.Request) -> web.Response:
        images = self.images()
        status = 200 if self.healthy(images[self.name]) else 503
        self.answers.append((status, images))
        return web.Response(status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/readyz", self.readyz)
        self.runner = web.AppRunner(app)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.port = int(self.runner.addresses[0][1])


async def sharded_group(arm: FakeArm, bot_1_healthy: Callable[[str], bool]) -> list[Readyz]:
    """The template's shape: bot-0, bot-1 (own health ports), the tls sidecar."""
    servers = [
        Readyz(arm, "bot-0", lambda image: True),
        Readyz(arm, "bot-1", bot_1_healthy),
    ]
    for server in servers:
        await server.start()
    group = arm.add_group(
        RG, "bot", image=PREVIOUS, containers=[*BOTS, "tls"], ip="127.0.0.1",
        port=servers[0].port, secure_env={"DISCORD_TOKEN": "old-secret"},
    )  # fmt: skip
    containers = group["properties"]["containers"]
    for container, server in zip(containers, servers, strict=False):
        container["properties"]["ports"] = [{"protocol": "TCP", "port": server.port}]
    containers[2]["properties"].update(
        image=CADDY,
        ports=[{"protocol": "TCP", "port": 443}],
        environmentVariables=[{"name": "CADDYFILE", "value": CADDYFILE}],
    )
    # As ARM returns them: the secret volume's file without its content.
    group["properties"]["volumes"] = [
        {"name": "caddy-data", "emptyDir": {}},
        {"name": "commands", "secret": {"commands.toml": None}},
    ]
    return servers


async def deploy_group(
    arm: FakeArm,
    certificate: SelfSignedCertificate,
    lines: list[str],
    env: Mapping[str, str] = ENV,
    *,
    key_vault: str | None = None,
) -> DeployReport:
    """``deploy`` of ``IMAGE`` to the group through the fake ARM, its lines into ``lines``."""
    settings = Settings(
        azure_subscription_id=arm.subscription,
        azure_resource_group=RG,
        azure_arm_endpoint=arm.url,
        azure_poll_interval_s=0.05,
        azure_retry_total=0,
        span_store="off",
    )
    options = AzureOptions(
        credential=StaticCredential(),
        transport={"connection_verify": str(certificate.cert_path)},
    )
    aci = build_aci(settings, options)
    request = DeployRequest(
        group="bot", image=IMAGE, timeout_s=3.0, poll_s=0.05, key_vault=key_vault
    )
    try:
        return await deploy(aci, request, env, lines.append)
    finally:
        await aci.close()
