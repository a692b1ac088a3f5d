"""The health server: alive always, ready only while the gateway is up."""

from __future__ import annotations

import aiohttp

from bot.client import ChatOpsBot
from bot.health import health_app, start_health_server
from bot.sandbox import FakeDiscord


async def test_readyz_follows_the_gateway(bot: ChatOpsBot, fake: FakeDiscord) -> None:
    runner = await start_health_server(health_app(lambda: bot.gateway_up), 0)
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{port}"
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 200
            await bot.close()
            async with http.get(f"{base}/readyz") as response:
                assert response.status == 503
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
    finally:
        await runner.cleanup()
