"""The health server: ``/healthz`` while the process runs, ``/readyz`` while the gateway is up.

CI webhooks are served by the same aiohttp application (routes added by callers).
"""

from __future__ import annotations

from collections.abc import Callable

from aiohttp import web


def health_app(is_ready: Callable[[], bool]) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        if is_ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    app = web.Application(client_max_size=1024 * 1024)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def start_health_server(app: web.Application, port: int) -> web.AppRunner:
    """Serve ``app`` on all interfaces at ``port`` (0 picks a free port)."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host="0.0.0.0", port=port)
    await site.start()
    return runner
