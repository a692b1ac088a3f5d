"""The health server: ``/healthz`` while the process runs, ``/readyz`` while the gateway is up.

CI webhooks are served by the same aiohttp application (routes added by
callers), or by one of their own on ``WEBHOOK_PORT`` so that the health port
need not be public. Either port is served under ``HttpLimits``
(``bot/http_limits.py``): slow clients are shed, not allowed to pile up.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable

from aiohttp import web

from bot.config import ConfigError, Settings
from bot.http_limits import ConnectionGuard, GuardedSite, HttpLimits, request_deadline
from bot.http_log import LimitReport, ServerLog

log = logging.getLogger(__name__)

# CircleCI's payloads are a few KiB; nothing on these ports needs more.
MAX_BODY_BYTES = 256 * 1024


def health_app(is_ready: Callable[[], bool]) -> web.Application:
    async def healthz(_request: web.Request) -> web.Response:
        return web.json_response({"status": "alive"})

    async def readyz(_request: web.Request) -> web.Response:
        if is_ready():
            return web.json_response({"status": "ready"})
        return web.json_response({"status": "not ready"}, status=503)

    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


def webhook_app() -> web.Application:
    """The application of ``WEBHOOK_PORT`` when webhooks are served apart (routes added later)."""
    return web.Application(client_max_size=MAX_BODY_BYTES)


async def start_health_server(
    app: web.Application, port: int, limits: HttpLimits | None = None
) -> web.AppRunner:
    """Serve ``app`` on all interfaces at ``port`` (0 picks a free port) under ``limits``."""
    limits = limits or HttpLimits()
    report = LimitReport(limits.log_interval_s)
    guard = ConnectionGuard(limits.max_connections, report)
    app.middlewares.append(request_deadline(guard, limits.request_timeout_s))
    runner = web.AppRunner(app, access_log=None, logger=ServerLog(report), **limits.handler_args())
    await runner.setup()
    try:
        await GuardedSite(runner, "0.0.0.0", port, guard, limits.backlog).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


async def open_ports(
    settings: Settings,
    is_ready: Callable[[], bool],
    mount_webhooks: Callable[[web.Application], None],
) -> list[web.AppRunner]:
    """``chatops run``'s servers: health on ``HEALTH_PORT``; webhooks there or on ``WEBHOOK_PORT``.

    The webhook port is opened only when something is mounted on it. A port
    that cannot be opened is a ``ConfigError`` naming its setting, not a
    network failure.
    """
    health = health_app(is_ready)
    webhooks = webhook_app() if settings.webhooks_apart else health
    mount_webhooks(webhooks)
    runners = [await _listen(health, settings.health_port, "HEALTH_PORT")]
    if webhooks is health or settings.webhook_port is None:
        return runners
    if not webhooks.router.routes():
        log.info("WEBHOOK_PORT not opened: no webhook receiver is configured")
        return runners
    try:
        runners.append(await _listen(webhooks, settings.webhook_port, "WEBHOOK_PORT"))
    except BaseException:
        await runners[0].cleanup()
        raise
    return runners


async def _listen(app: web.Application, port: int, setting: str) -> web.AppRunner:
    try:
        return await start_health_server(app, port)
    except OSError as exc:
        reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
        raise ConfigError(f"cannot listen on {setting} {port}: {reason}") from None
