"""Honeycomb alerts into Discord: ``POST /hooks/honeycomb`` on the bot's webhook server.

The real bot is connected to the Discord fake; the receiver is mounted on the
health app as ``chatops run`` mounts it; deliveries are shaped after Honeycomb's
default trigger payload and headers. Bad input: forged, replayed, malformed.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from pydantic import SecretStr

from bot.alert_hooks import DELIVERY_HEADER, TOKEN_HEADER, honeycomb_hook
from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.health import health_app, start_health_server
from bot.sandbox import FakeDiscord
from commands.ops.open_alerts import MAX_ROWS, OpenAlerts, Posted
from telemetry import schema
from telemetry.honeycomb_payloads import BUDGET_RATE, EXHAUSTION_TIME, TRIGGER, template
from tests.helpers.sandbox_chat import until

SECRET = "hook-secret-456"
RESULT = "https://ui.honeycomb.io/acme/environments/prod/datasets/chatops-bot/result/abc123"


def trigger(status: str = "TRIGGERED", **more: Any) -> dict[str, Any]:
    """Honeycomb's default trigger payload (docs: "Send Alerts to Webhooks")."""
    return {
        "version": "v0.1.0",
        "id": "trg4Kd8",
        "name": "chatops: a command's p95 over 2 s",
        "trigger_url": "https://ui.honeycomb.io/acme/environments/prod/datasets/x/triggers/trg4Kd8",
        "status": status,
        "summary": f"{status.title()}: chatops: a command's p95 over 2 s",
        "description": "Currently greater than threshold value (2000) for app.command:mtg",
        "operator": "greater than",
        "threshold": 2000,
        "result_url": RESULT,
        "result_groups_triggered": [{"Group": {"app.command": "mtg"}, "Result": 3120.5}],
        "is_test": False,
        **more,
    }


@pytest.fixture
def alerts(fake: FakeDiscord) -> int:
    return fake.add_channel("alerts")


@pytest.fixture
async def hooked(
    settings: Settings, fake: FakeDiscord, alerts: int, tmp_path: Path,
    spans: InMemorySpanExporter,
) -> AsyncIterator[tuple[ChatOpsBot, str]]:  # fmt: skip
    configured = settings.model_copy(
        update={
            "alert_channel_id": alerts,
            "honeycomb_webhook_secret": SecretStr(SECRET),
            "honeycomb_hook_state_db": tmp_path / "hooks.db",
        }
    )
    async with connected_bot(configured, fake, guild_ready_timeout=0.05) as bot:
        receiver = honeycomb_hook(configured, bot.announce_alert)
        assert receiver is not None
        app = health_app(lambda: bot.gateway_up)
        app.add_routes(receiver.routes())
        runner = await start_health_server(app, 0)
        try:
            yield bot, f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/honeycomb"
        finally:
            await runner.cleanup()
            await receiver.close()


@asynccontextmanager
async def receiving(bot: ChatOpsBot) -> AsyncIterator[str]:
    """``/hooks/honeycomb`` for ``bot``, mounted as ``chatops run`` mounts it; its URL."""
    receiver = honeycomb_hook(bot.settings, bot.announce_alert)
    assert receiver is not None
    app = health_app(lambda: bot.gateway_up)
    app.add_routes(receiver.routes())
    runner = await start_health_server(app, 0)
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/honeycomb"
    finally:
        await runner.cleanup()
        await receiver.close()


@asynccontextmanager
async def lifetime(configured: Settings, fake: FakeDiscord) -> AsyncIterator[str]:
    """One life of the bot and its receiver (a ``chatops run`` between two restarts)."""
    async with AsyncExitStack() as stack:
        bot = await stack.enter_async_context(
            connected_bot(configured, fake, guild_ready_timeout=0.05)
        )
        yield await stack.enter_async_context(receiving(bot))


async def post(
    url: str, body: Any, *, token: str | None = SECRET, delivery: str | None = "d-1"
) -> tuple[int, dict[str, Any]]:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers[TOKEN_HEADER] = token
    if delivery is not None:
        headers[DELIVERY_HEADER] = delivery
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, data=data, headers=headers) as response,
    ):
        return response.status, await response.json()


def hook_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == "hook honeycomb"]


def posts_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == "alert.post"]


async def test_a_trigger_is_posted_with_the_result_link_and_its_resolution_edits_the_post(
    hooked: tuple[ChatOpsBot, str], fake: FakeDiscord, alerts: int, spans: InMemorySpanExporter
) -> None:
    _, url = hooked
    assert await post(url, trigger()) == (202, {"status": "accepted"})
    await until(lambda: len(fake.messages_in(alerts)) == 1)
    (message,) = fake.messages_in(alerts)
    (embed,) = message["embeds"]
    assert embed["title"] == "\U0001f525 chatops: a command's p95 over 2 s"
    assert embed["url"] == RESULT
    assert "app.command:mtg" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["triggered by"] == "`app.command=mtg: 3120.5`"
    assert fields["query result"] == RESULT
    assert not fake.would_ping(message)
    await until(lambda: len(posts_spans(spans)) == 1)
    (hook,) = hook_spans(spans)
    assert hook.parent is None and hook.attributes[schema.OUTCOME] == "ok"
    assert hook.attributes[schema.HOOK_STATUS] == 202
    (first,) = posts_spans(spans)
    assert first.links[0].context.span_id == hook.context.span_id

    assert (await post(url, trigger("OK"), delivery="d-2"))[0] == 202
    await until(lambda: len(posts_spans(spans)) == 2)
    (edited,) = fake.messages_in(alerts)  # the same post, edited: no second message
    assert edited["id"] == message["id"]
    assert edited["embeds"][0]["title"] == "\u2705 Resolved: chatops: a command's p95 over 2 s"
    assert posts_spans(spans)[1].attributes[schema.ALERT_EDITED] is True


async def test_a_forged_delivery_is_refused_and_posts_nothing(
    hooked: tuple[ChatOpsBot, str], fake: FakeDiscord, alerts: int, spans: InMemorySpanExporter
) -> None:
    _, url = hooked
    for token in ("wrong-secret", "", None, SECRET[:-1], SECRET + "x"):
        status, answer = await post(url, trigger(), token=token)
        assert (status, answer) == (401, {"error": "bad or missing webhook token"})
    await asyncio.sleep(0.2)
    assert fake.messages_in(alerts) == []
    assert [s.attributes[schema.OUTCOME] for s in hook_spans(spans)] == ["denied"] * 5
    assert SECRET not in str([s.attributes for s in spans.get_finished_spans()])


async def test_a_replayed_delivery_is_refused_even_after_a_restart_of_the_receiver(
    hooked: tuple[ChatOpsBot, str], settings: Settings, fake: FakeDiscord, alerts: int,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    _, url = hooked
    assert (await post(url, trigger(), delivery="same"))[0] == 202
    await until(lambda: len(fake.messages_in(alerts)) == 1)
    assert await post(url, trigger(), delivery="same") == (200, {"status": "duplicate"})
    assert (await post(url, trigger("OK"), delivery="same"))[0] == 200
    await asyncio.sleep(0.2)
    assert len(fake.messages_in(alerts)) == 1
    assert fake.messages_in(alerts)[0]["embeds"][0]["title"].startswith("\U0001f525")
    assert [s.attributes[schema.OUTCOME] for s in hook_spans(spans)] == ["ok", "ignored", "ignored"]
    # A new receiver over the same state file (the bot restarted) still knows the id.
    bot, _ = hooked
    again = honeycomb_hook(bot.settings, bot.announce_alert)
    assert again is not None
    app = health_app(lambda: True)
    app.add_routes(again.routes())
    runner = await start_health_server(app, 0)
    try:
        other = f"http://127.0.0.1:{runner.addresses[0][1]}/hooks/honeycomb"
        assert await post(other, trigger(), delivery="same") == (200, {"status": "duplicate"})
    finally:
        await runner.cleanup()
        await again.close()
    assert len(fake.messages_in(alerts)) == 1


@pytest.mark.parametrize(
    ("body", "delivery", "status", "error"),
    [
        (b"{not json", "d-9", 400, "the body is not JSON"),
        (b"[1, 2]", "d-9", 400, "the body is not a JSON object"),
        ({"status": "TRIGGERED"}, "d-9", 400, "no alert name"),
        (trigger(), None, 400, f"{DELIVERY_HEADER} is required"),
        (b"x" * (65 * 1024), "d-9", 413, "body too large"),
        (trigger(result_groups_triggered={"not": "a list"}), "d-9", 202, None),
    ],
)
async def test_malformed_deliveries_get_one_line_and_never_a_traceback(
    hooked: tuple[ChatOpsBot, str], fake: FakeDiscord, alerts: int, spans: InMemorySpanExporter,
    body: Any, delivery: str | None, status: int, error: str | None,
) -> None:  # fmt: skip
    _, url = hooked
    got, answer = await post(url, body, delivery=delivery)
    assert got == status
    if error is not None:
        assert answer == {"error": error}
        assert hook_spans(spans)[0].attributes[schema.OUTCOME] == "bad_input"
        await asyncio.sleep(0.1)
        assert fake.messages_in(alerts) == []
    else:
        await until(lambda: len(fake.messages_in(alerts)) == 1)


async def test_a_result_link_that_is_not_https_is_not_linked(
    hooked: tuple[ChatOpsBot, str], fake: FakeDiscord, alerts: int
) -> None:
    _, url = hooked
    payload = trigger(result_url="javascript:alert(1)", description="[click](https://evil.example)")
    assert (await post(url, payload))[0] == 202
    await until(lambda: len(fake.messages_in(alerts)) == 1)
    (embed,) = fake.messages_in(alerts)[0]["embeds"]
    assert "url" not in embed or embed["url"] is None
    assert "](" not in embed["description"]


async def test_a_resolution_after_a_restart_of_the_bot_edits_the_original_post(
    settings: Settings, fake: FakeDiscord, alerts: int, tmp_path: Path,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    """Two lifetimes of bot and receiver over one state file: the alert fires in the
    first, resolves in the second, and the channel still holds one post, edited."""
    configured = settings.model_copy(
        update={
            "alert_channel_id": alerts,
            "honeycomb_webhook_secret": SecretStr(SECRET),
            "honeycomb_hook_state_db": tmp_path / "hooks.db",
        }
    )
    async with lifetime(configured, fake) as url:
        assert (await post(url, trigger(), delivery="fire"))[0] == 202
        await until(lambda: len(posts_spans(spans)) == 1)
    (first,) = fake.messages_in(alerts)
    async with lifetime(configured, fake) as url:
        assert (await post(url, trigger("OK"), delivery="resolve"))[0] == 202
        await until(lambda: len(posts_spans(spans)) == 2)
    (edited,) = fake.messages_in(alerts)
    assert edited["id"] == first["id"]
    assert edited["embeds"][0]["title"] == "\u2705 Resolved: chatops: a command's p95 over 2 s"
    assert posts_spans(spans)[1].attributes[schema.ALERT_EDITED] is True


async def test_an_open_alert_whose_post_was_deleted_is_posted_again(
    hooked: tuple[ChatOpsBot, str], fake: FakeDiscord, alerts: int, spans: InMemorySpanExporter
) -> None:
    bot, url = hooked
    assert (await post(url, trigger(), delivery="a"))[0] == 202
    await until(lambda: len(fake.messages_in(alerts)) == 1)
    (message,) = fake.messages_in(alerts)
    await bot.http.delete_message(alerts, int(message["id"]))  # someone removed the post
    assert (await post(url, trigger("OK"), delivery="b"))[0] == 202
    await until(lambda: len(fake.messages_in(alerts)) == 2)
    assert fake.messages_in(alerts)[1]["embeds"][0]["title"].startswith("\u2705 Resolved")
    assert posts_spans(spans)[1].attributes[schema.OUTCOME] == "ok"


def test_open_alerts_are_forgotten_after_seven_days_and_bounded(tmp_path: Path) -> None:
    store = OpenAlerts(tmp_path / "hooks.db")
    day_ns = 86_400 * 10**9
    store.remember("old", Posted(1, 2), 0)
    assert store.find("old", 6 * day_ns) == Posted(1, 2)
    assert store.find("old", 8 * day_ns) is None
    for i in range(MAX_ROWS + 5):
        store.remember(f"k{i}", Posted(1, i), 8 * day_ns + i)
    assert store.count() == MAX_ROWS
    assert store.find("k0", 8 * day_ns + MAX_ROWS) is None
    assert store.find(f"k{MAX_ROWS + 4}", 8 * day_ns + MAX_ROWS) is not None
    store.close()


# -- the payloads `chatops honeycomb apply` gives the recipient, rendered as Honeycomb would

SLO_URL = "https://ui.honeycomb.io/acme/environments/prod/datasets/chatops-bot/slos/sLo123"


def render(kind: str, variables: dict[str, Any]) -> dict[str, Any]:
    """The recipient's template for ``kind`` filled in: each ``{{ toJson .A.B }}`` becomes
    the JSON of that variable (Go's text/template with Honeycomb's ``toJson``)."""

    def value(match: re.Match[str]) -> str:
        found: Any = variables
        for part in match.group(1).strip(".").split("."):
            found = found[part]
        return json.dumps(found)

    text = re.sub(r"\{\{\s*toJson\s+(\.[\w.]+)\s*\}\}", value, template(kind))
    assert "{{" not in text, "a template uses more than toJson of a variable"
    return dict(json.loads(text))


def alert_vars(status: str, summary: str, description: str) -> dict[str, Any]:
    """The ``.Alert`` variables (docs: "Custom Webhook Variables")."""
    return {
        "Status": status,
        "Summary": summary,
        "Description": description,
        "InstanceID": "1015bd0f-99a3-41e7-817e-9c831df21262",
        "IsTest": False,
    }


def trigger_vars(status: str = "TRIGGERED") -> dict[str, Any]:
    return {
        "ID": "trg4Kd8",
        "Name": "chatops: a command's p95 over 2 s",
        "Description": 'Runbook: "docs/ops-loop.md"',
        "URL": "https://ui.honeycomb.io/acme/environments/prod/datasets/x/triggers/trg4Kd8",
        "Result": {
            "URL": RESULT,
            "GroupsTriggered": [
                {"Group": [{"Key": "app.command", "Value": "mtg"}], "Result": 3120.5}
            ],
        },
        "Alert": alert_vars(
            status,
            f"{status.title()}: chatops: a command's p95 over 2 s",
            "prod environment:\nCurrently greater than threshold value (2000) for app.command: mtg",
        ),
    }


def burn_vars(status: str = "TRIGGERED") -> dict[str, Any]:
    return {
        "ID": "sLo123",
        "Name": "chatops: commands succeed",
        "Description": "99.5 % of commands succeed over 30 days",
        "URL": SLO_URL,
        "Alert": alert_vars(
            status,
            f"{status.title()}: SLO chatops: commands succeed",
            "Budget exhausted within 4 hours at the current rate",
        ),
    }


async def test_a_trigger_from_the_recipients_template_is_posted_like_the_default_payload(
    hooked: tuple[ChatOpsBot, str], fake: FakeDiscord, alerts: int, spans: InMemorySpanExporter
) -> None:
    _, url = hooked
    assert (await post(url, render(TRIGGER, trigger_vars()), delivery="t1"))[0] == 202
    await until(lambda: len(fake.messages_in(alerts)) == 1)
    (embed,) = fake.messages_in(alerts)[0]["embeds"]
    assert embed["title"] == "\U0001f525 chatops: a command's p95 over 2 s"
    assert embed["url"] == RESULT
    assert "app.command: mtg" in embed["description"]
    fields = {f["name"]: f["value"] for f in embed["fields"]}
    assert fields["triggered by"] == "`app.command=mtg: 3120.5`"
    assert (await post(url, render(TRIGGER, trigger_vars("OK")), delivery="t2"))[0] == 202
    await until(lambda: len(posts_spans(spans)) == 2)
    (resolved,) = fake.messages_in(alerts)
    assert resolved["embeds"][0]["title"].startswith("\u2705 Resolved")


async def test_burn_alerts_from_the_recipients_templates_fire_and_resolve_each_in_its_post(
    hooked: tuple[ChatOpsBot, str], fake: FakeDiscord, alerts: int, spans: InMemorySpanExporter
) -> None:
    """Both burn alerts of one SLO fire: two posts; one resolves: its own post is edited."""
    _, url = hooked
    assert (await post(url, render(EXHAUSTION_TIME, burn_vars()), delivery="b1"))[0] == 202
    await until(lambda: len(fake.messages_in(alerts)) == 1)
    assert (await post(url, render(BUDGET_RATE, burn_vars()), delivery="b2"))[0] == 202
    await until(lambda: len(fake.messages_in(alerts)) == 2)
    exhaustion, rate = (m["embeds"][0] for m in fake.messages_in(alerts))
    assert exhaustion["title"] == "\U0001f525 chatops: commands succeed"
    assert exhaustion["url"] == SLO_URL
    assert "within 4 hours" in exhaustion["description"]
    assert "SLO burn alert (exhaustion time)" in exhaustion["footer"]["text"]
    assert "SLO burn alert (budget rate)" in rate["footer"]["text"]

    resolved = render(EXHAUSTION_TIME, burn_vars("OK"))
    assert (await post(url, resolved, delivery="b3"))[0] == 202
    await until(lambda: len(posts_spans(spans)) == 3)
    exhaustion, rate = (m["embeds"][0] for m in fake.messages_in(alerts))
    assert exhaustion["title"] == "\u2705 Resolved: chatops: commands succeed"
    assert rate["title"] == "\U0001f525 chatops: commands succeed"
    assert hook_spans(spans)[2].attributes[schema.ALERT_STATUS] == "OK"
