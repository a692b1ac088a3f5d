"""The health and webhook ports: slow clients are shed, and the bot stays on Discord."""

from __future__ import annotations

import asyncio
import errno
import logging
import os
import signal
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

from bot.health import health_app, start_health_server
from bot.http_limits import ACCEPT_FAILED, ConnectionGuard, GuardedSite, HttpLimits
from bot.sandbox import FakeDiscord
from tests.helpers.chatops_process import TOKEN, child_env, closed_port, start
from tests.helpers.raw_http import RawConnection, slow_client, status_of, until_status
from tests.helpers.sandbox_chat import until

# Far more than the bound on open connections, and more than the child may open
# files: on a server without limits, these alone leave it no file descriptor.
SLOW_CLIENTS = {"idle": 200, "head": 100, "body": 100}
CHILD_MAX_OPEN_FILES = 256


async def test_hundreds_of_slow_clients_leave_healthz_and_discord_answering(
    fake: FakeDiscord,
) -> None:
    port = closed_port()
    env = child_env(
        DISCORD_TOKEN=TOKEN,
        DISCORD_API_BASE=fake.api_base,
        HEALTH_PORT=str(port),
        CIRCLECI_HOOK_SECRET="hook-secret",
        # configured, so half-sent bodies wait in the receiver; nothing is exported
        CIRCLECI_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
    )
    process = await start(env, max_open_files=CHILD_MAX_OPEN_FILES)
    slow: list[RawConnection] = []
    try:
        await fake.wait_ready(timeout=20)
        await until_status(port, "/readyz", 200)
        async with asyncio.timeout(30):
            for kind, count in SLOW_CLIENTS.items():
                slow += [await slow_client(port, kind) for _ in range(count)]
        asked = time.monotonic()
        healthz = await status_of(port, "/healthz")
        healthz_s = time.monotonic() - asked
        readyz = await status_of(port, "/readyz")
        answer = await fake.say("!ping", timeout=10)
        open_files = len(os.listdir(f"/proc/{process.pid}/fd"))
    finally:
        for connection in slow:
            connection.close()
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    log = stderr.decode()
    assert (healthz, readyz) == (200, 200)
    assert healthz_s < 1.0, f"/healthz took {healthz_s:.2f}s"
    assert answer is not None and answer["content"].startswith("Pong!")
    assert open_files <= HttpLimits().max_connections + 32, open_files
    assert process.returncode == 0, log
    assert "Traceback" not in log
    limit_lines = [line for line in log.splitlines() if f"HTTP port {port}:" in line]
    assert 1 <= len(limit_lines) <= 2, log


def accept_queue(port: int) -> int:
    """How many connections the kernel holds for the listener on ``port``, not yet accepted."""
    with open("/proc/net/tcp") as table:
        for line in table:
            fields = line.split()
            if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":  # LISTEN
                return int(fields[4].split(":")[1], 16)  # rx_queue: the accept queue
    raise LookupError(port)


async def test_a_burst_while_the_bot_is_paused_costs_it_no_traceback_and_no_descriptors(
    fake: FakeDiscord,
) -> None:
    """The bot paused (a busy moment, a stop) while clients queue in the kernel: asyncio
    accepts the whole queue at once, before the guard sees one, so it must stay small."""
    port = closed_port()
    env = child_env(DISCORD_TOKEN=TOKEN, DISCORD_API_BASE=fake.api_base, HEALTH_PORT=str(port))
    process = await start(env, max_open_files=CHILD_MAX_OPEN_FILES)
    limits = HttpLimits()
    slow: list[RawConnection] = []
    burst: list[asyncio.Task[RawConnection]] = []
    try:
        await fake.wait_ready(timeout=20)
        await until_status(port, "/readyz", 200)
        slow += [await slow_client(port, "idle") for _ in range(limits.max_connections)]
        process.send_signal(signal.SIGSTOP)
        burst = [asyncio.create_task(slow_client(port, "idle")) for _ in range(120)]
        queued = min(len(burst), limits.backlog + 1)  # the kernel's queue, full
        await until(lambda: accept_queue(port) >= queued, within=10)
        process.send_signal(signal.SIGCONT)
        healthz = await status_of(port, "/healthz")
        answer = await fake.say("!ping", timeout=10)
        open_files = len(os.listdir(f"/proc/{process.pid}/fd"))
    finally:
        process.send_signal(signal.SIGCONT)
        for task in burst:
            task.cancel()
        for done in await asyncio.gather(*burst, return_exceptions=True):
            if isinstance(done, RawConnection):
                done.close()
        for connection in slow:
            connection.close()
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    log = stderr.decode()
    assert healthz == 200
    assert answer is not None and answer["content"].startswith("Pong!")
    assert open_files <= limits.max_connections + 32, open_files
    assert process.returncode == 0, log
    assert "Traceback" not in log and "out of file descriptors" not in log, log


async def test_webhook_port_serves_the_webhook_and_the_health_port_only_health(
    fake: FakeDiscord,
) -> None:
    health, hooks = closed_port(), closed_port()
    env = child_env(
        DISCORD_TOKEN=TOKEN,
        DISCORD_API_BASE=fake.api_base,
        HEALTH_PORT=str(health),
        WEBHOOK_PORT=str(hooks),
        CIRCLECI_HOOK_SECRET="hook-secret",
        CIRCLECI_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
    )
    process = await start(env)
    try:
        await fake.wait_ready(timeout=20)
        await until_status(health, "/readyz", 200)
        unsigned = {"method": "POST", "body": b"{}"}
        on_hooks = [await status_of(hooks, "/hooks/circleci", **unsigned)]
        on_hooks += [await status_of(hooks, "/healthz"), await status_of(hooks, "/readyz")]
        on_health = await status_of(health, "/hooks/circleci", **unsigned)
    finally:
        process.send_signal(signal.SIGTERM)
        _, stderr = await asyncio.wait_for(process.communicate(), timeout=30)
    assert process.returncode == 0, stderr.decode()
    assert on_hooks == [401, 404, 404]  # the receiver checked the signature; no health routes
    assert on_health == 404


@asynccontextmanager
async def serving(
    limits: HttpLimits, *routes: web.RouteDef
) -> AsyncIterator[tuple[int, ConnectionGuard]]:
    """The health app (plus ``routes``) served under ``limits``: its port and its guard."""
    app = health_app(lambda: True)
    app.add_routes(routes)
    runner = await start_health_server(app, 0, limits)
    (site,) = runner.sites
    assert isinstance(site, GuardedSite)
    try:
        yield runner.addresses[0][1], site.guard
    finally:
        await runner.cleanup()


async def test_accepts_paused_for_want_of_descriptors_are_counted_not_logged_each_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """What asyncio reports when accept() fails with EMFILE, as it reports it, on the
    health and the webhook port; they close in the order they opened, as ``chatops run``
    closes them, and leave the loop's handler as it was."""
    caplog.set_level(logging.WARNING)
    loop = asyncio.get_running_loop()
    runners = [await start_health_server(health_app(lambda: True), 0) for _ in range(2)]
    sites = [site for runner in runners for site in runner.sites]
    assert all(isinstance(site, GuardedSite) for site in sites)
    ports = [runner.addresses[0][1] for runner in runners]

    def failed_accept(site: object) -> None:
        assert isinstance(site, GuardedSite)
        loop.call_exception_handler(
            {
                "message": ACCEPT_FAILED,
                "exception": OSError(errno.EMFILE, "Too many open files"),
                "socket": site.listener,
            }
        )

    try:
        for _ in range(3):
            failed_accept(sites[0])
        failed_accept(sites[1])
        loop.call_exception_handler({"message": "something else"})
    finally:
        for runner in runners:
            await runner.cleanup()
    messages = [record.getMessage() for record in caplog.records]
    paused = "accepts paused for 1 s: the process is out of file descriptors"
    assert messages == [
        f"HTTP port {ports[0]}: 1 {paused}",
        f"HTTP port {ports[1]}: 1 {paused}",
        "something else",
        f"HTTP port {ports[0]}: 2 {paused}",
    ]
    assert not [record for record in caplog.records if record.exc_info]
    assert loop.get_exception_handler() is None  # the ports' handler left with them


async def read_body(request: web.Request) -> web.Response:
    return web.Response(text=f"{len(await request.read())} bytes")


async def test_a_connection_that_never_finishes_its_request_head_is_closed() -> None:
    async with serving(HttpLimits(head_timeout_s=0.3)) as (port, _):
        idle = await slow_client(port, "idle")
        half = await slow_client(port, "head")
        assert await idle.closed_by_server(within=10) == b""
        assert await half.closed_by_server(within=10) == b""


async def test_a_body_that_stops_arriving_is_answered_408_and_its_connection_closed() -> None:
    hooks = web.post("/hooks/circleci", read_body)
    async with serving(HttpLimits(request_timeout_s=0.3), hooks) as (port, _):
        stalled = await slow_client(port, "body")
        answer = await stalled.closed_by_server(within=10)
    assert answer.startswith(b"HTTP/1.1 408 "), answer


async def test_over_the_bound_the_oldest_waiting_connection_makes_room() -> None:
    async with serving(HttpLimits(max_connections=3)) as (port, guard):
        oldest, middle, newest = [await slow_client(port, "idle") for _ in range(3)]
        assert await status_of(port, "/healthz") == 200
        await oldest.closed_by_server(within=10)
        assert middle.is_open() and newest.is_open()
        assert guard.open_connections <= 3


async def test_when_every_connection_is_being_answered_a_new_one_gets_503() -> None:
    started: list[None] = []
    both_started = asyncio.Event()
    release = asyncio.Event()

    async def hold(_request: web.Request) -> web.Response:
        started.append(None)
        if len(started) == 2:
            both_started.set()
        await release.wait()
        return web.Response(text="done")

    async with serving(HttpLimits(max_connections=2), web.get("/hold", hold)) as (port, _):
        held = [
            asyncio.create_task(status_of(port, "/hold", within=30)),
            asyncio.create_task(status_of(port, "/hold", within=30)),
        ]
        await asyncio.wait_for(both_started.wait(), 10)
        assert await status_of(port, "/healthz") == 503
        release.set()
        assert await asyncio.gather(*held) == [200, 200]
        assert await status_of(port, "/healthz") == 200


async def test_what_the_limits_did_is_logged_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="bot.http_log")
    async with serving(HttpLimits(max_connections=1, log_interval_s=60)) as (port, _):
        previous = await slow_client(port, "idle")
        for _ in range(30):
            connection = await slow_client(port, "idle")
            await previous.closed_by_server(within=10)
            previous = connection
        during = [record.getMessage() for record in caplog.records]
    after = [record.getMessage() for record in caplog.records]
    assert during == [f"HTTP port {port}: 1 slow connections closed to stay within 1 open"]
    assert after[1:] == [f"HTTP port {port}: 29 slow connections closed to stay within 1 open"]


async def test_malformed_requests_are_counted_not_logged_with_a_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    caplog.set_level(logging.WARNING, logger="bot.http_log")
    async with serving(HttpLimits(log_interval_s=60)) as (port, _):
        for _ in range(20):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nX-Long: " + b"a" * 5000 + b"\r\n\r\n")
            assert (await reader.readline()).split()[1] == b"400"
            writer.close()
        during = [record.getMessage() for record in caplog.records if record.levelno > logging.INFO]
    assert during == [f"HTTP port {port}: 1 malformed requests refused (400)"]
    assert not [record for record in caplog.records if record.exc_info]
    last = caplog.records[-1].getMessage()
    assert last == f"HTTP port {port}: 19 malformed requests refused (400)"


async def read_body_as_aiohttp_may(request: web.Request) -> web.Response:
    """Read the body; once the client is gone, fail as aiohttp's body stream may.

    It raises ConnectionResetError, or RuntimeError when the handler started
    reading only after the connection was lost (a race a test cannot pin down).
    """
    try:
        return await read_body(request)
    except ConnectionResetError:
        if request.query.get("raises") == "RuntimeError":
            raise RuntimeError("Connection closed.") from None
        raise


@pytest.mark.parametrize("raises", ["ConnectionResetError", "RuntimeError"])
async def test_a_client_shed_or_gone_mid_body_logs_no_traceback(
    caplog: pytest.LogCaptureFixture, raises: str
) -> None:
    caplog.set_level(logging.DEBUG, logger="aiohttp.server")
    hooks = web.post("/hooks/circleci", read_body_as_aiohttp_may)
    async with serving(HttpLimits(max_connections=1), hooks) as (port, _):
        shed = await slow_client(port, "body", query=f"raises={raises}")
        assert await status_of(port, "/healthz") == 200
        await shed.closed_by_server(within=10)
        gone = await slow_client(port, "body", query=f"raises={raises}")
        gone.close()
        assert await status_of(port, "/healthz") == 200
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_a_failing_handler_logs_its_traceback_once_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def broken(_request: web.Request) -> web.Response:
        raise LookupError("a bug in a handler")

    caplog.set_level(logging.WARNING)
    limits = HttpLimits(log_interval_s=60)
    async with serving(limits, web.get("/broken", broken)) as (port, _):
        assert [await status_of(port, "/broken") for _ in range(5)] == [500] * 5
    tracebacks = [record for record in caplog.records if record.exc_info]
    assert len(tracebacks) == 1
    # The first of the other four at once, the rest summed when the server stops.
    assert [record.getMessage() for record in caplog.records[-2:]] == [
        f"HTTP port {port}: 1 more failed requests (500) like the one logged",
        f"HTTP port {port}: 3 more failed requests (500) like the one logged",
    ]
