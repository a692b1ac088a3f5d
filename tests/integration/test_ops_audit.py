"""The audit channel and two-person approval, through the real bot, the Discord fake and fake ARM.

Every change made with ``!aci`` is posted once to ``AUDIT_CHANNEL_ID`` (who, what,
resource, result, duration, trace), a denied attempt too, and a reload of the
flags file that changed a permission flag; posts are paced, coalesced, counted
when dropped, and never ping. With ``aci-two-person`` on for the resource group,
stop and restart wait for a second operator's Approve.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.azure_wiring import AzureOptions
from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from commands.ops.audit import Actor, AuditEntry
from commands.toolkit.approve import APPROVE_ID, CANCEL_ID, NOT_AN_APPROVER, OWN_REQUEST
from commands.toolkit.confirm import CONFIRM_ID
from telemetry import schema
from tests.fakes.arm import FakeArm, StaticCredential
from tests.fakes.tls import SelfSignedCertificate, make_certificate
from tests.helpers.flag_rules import IS_ADMIN, boolean_flag, users, write_flags
from tests.helpers.sandbox_chat import is_ephemeral, run_slash, settled_root, until
from tests.helpers.trace_finders import interaction_root

RG = "chatops-rg"
PROD = "prod-rg"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def arm(certificate: SelfSignedCertificate) -> AsyncIterator[FakeArm]:
    async with FakeArm(certificate, operation_s=0.05) as server:
        server.add_group(RG, "web")
        server.add_group(PROD, "api")
        yield server


@pytest.fixture
def operator(fake: FakeDiscord) -> dict[str, Any]:
    return fake.add_user("olivia")


@pytest.fixture
def second(fake: FakeDiscord) -> dict[str, Any]:
    return fake.add_user("sam")


@pytest.fixture
def audit_channel(fake: FakeDiscord) -> int:
    return fake.add_channel("audit")


def operator_flags(operator: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    ops = {"or": [IS_ADMIN, users(operator["id"], second["id"])]}
    return {
        "aci-reader": boolean_flag(ops),
        "aci-operator": boolean_flag(ops),
        "aci-two-person": boolean_flag({"==": [{"var": "resourceGroup"}, PROD]}),
    }


@pytest.fixture
def aci_settings(
    settings: Settings,
    arm: FakeArm,
    operator: dict[str, Any],
    second: dict[str, Any],
    audit_channel: int,
) -> Settings:
    write_flags(settings.flags_file, operator_flags(operator, second))
    return settings.model_copy(
        update={
            "azure_subscription_id": arm.subscription,
            "azure_resource_group": [RG, PROD],
            "azure_arm_endpoint": arm.url,
            "azure_poll_interval_s": 0.05,
            "azure_retry_total": 1,
            "azure_confirm_timeout_s": 1.5,
            "azure_operation_timeout_s": 5.0,
            "azure_call_timeout_s": 5.0,
            "audit_channel_id": audit_channel,
            "flags_poll_ms": 10,
        }
    )


@pytest.fixture
async def aci_bot(
    aci_settings: Settings,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    certificate: SelfSignedCertificate,
) -> AsyncIterator[ChatOpsBot]:
    options = AzureOptions(
        credential=StaticCredential(),
        transport={"connection_verify": str(certificate.cert_path)},
    )
    async with connected_bot(aci_settings, fake, guild_ready_timeout=0.05, azure=options) as bot:
        yield bot


async def say(fake: FakeDiscord, text: str, author: dict[str, Any]) -> tuple[Any, Any]:
    message = fake.send_message(text, author=author)
    async with asyncio.timeout(5):
        while True:
            replies = [
                m
                for m in fake.bot_messages
                if (m.get("message_reference") or {}).get("message_id") == message["id"]
            ]
            if replies:
                return message, replies[0]
            await asyncio.sleep(0.01)


async def audit_posts(fake: FakeDiscord, channel: int, count: int) -> list[dict[str, Any]]:
    await until(lambda: len(fake.messages_in(channel)) >= count, within=8)
    return fake.messages_in(channel)


def tid(span: ReadableSpan) -> str:
    return format(span.context.trace_id, "032x")


def audit_spans(spans: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == schema.AUDIT_SPAN]


# -- the audit channel -------------------------------------------------------


async def test_a_confirmed_restart_is_posted_once_with_who_what_result_duration_and_trace(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], audit_channel: int,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci restart web", operator)
    await fake.click(question, CONFIRM_ID, author=operator)
    root = await settled_root(spans, message)
    (post,) = await audit_posts(fake, audit_channel, 1)
    text = post["content"]
    assert text.startswith("\u2705 **aci restart** `chatops-rg/web`")
    assert f"<@{operator['id']}> (olivia)" in text and ": ok in " in text
    assert "confirmed by requester" in text
    assert f"trace `{tid(root)}`" in text
    assert not fake.would_ping(post) and post["allowed_mentions"] == {"parse": []}
    # Its own root span, linked to the command's trace.
    await until(lambda: len(audit_spans(spans)) == 1)
    (span,) = audit_spans(spans)
    assert span.parent is None and span.attributes[schema.OUTCOME] == "ok"
    assert span.attributes[schema.AUDIT_ENTRIES] == 1
    assert [link.context.trace_id for link in span.links] == [root.context.trace_id]
    await asyncio.sleep(0.2)
    assert len(fake.messages_in(audit_channel)) == 1  # once


async def test_cancelled_and_failed_changes_are_posted_with_their_result(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    audit_channel: int, spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci stop web", operator)
    await fake.click(question, "aci:cancel", author=operator)
    await settled_root(spans, message)
    arm.fail("POST", "/web/start", status=409, code="Conflict", message="busy")
    started, _ = await say(fake, "!aci start web", operator)
    await settled_root(spans, started)
    posts = await audit_posts(fake, audit_channel, 2)
    text = "\n".join(p["content"] for p in posts)
    assert "**aci stop** `chatops-rg/web`" in text and ": cancelled" in text
    assert "**aci start** `chatops-rg/web`" in text and ": failed: Azure answered 409" in text


async def test_a_denied_attempt_at_a_change_is_posted_but_a_denied_read_is_not(
    aci_bot: ChatOpsBot, fake: FakeDiscord, arm: FakeArm, audit_channel: int,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    mallory = fake.add_user("mallory @everyone")
    message, answer = await say(fake, "!aci restart web", mallory)
    assert answer["content"] == "You can't use `!aci restart`."
    root = await settled_root(spans, message)
    read, _ = await say(fake, "!aci list", mallory)
    await settled_root(spans, read)
    (post,) = await audit_posts(fake, audit_channel, 1)
    assert post["content"].startswith("\u26d4 **aci restart** `web`")
    assert f"<@{mallory['id']}>" in post["content"] and ": denied" in post["content"]
    assert tid(root) in post["content"]
    assert not fake.would_ping(post)
    assert arm.calls("POST", "/restart") == []
    await asyncio.sleep(0.2)
    assert len(fake.messages_in(audit_channel)) == 1


async def test_a_flags_reload_that_changes_a_permission_flag_is_posted(
    aci_bot: ChatOpsBot, aci_settings: Settings, fake: FakeDiscord, operator: dict[str, Any],
    second: dict[str, Any], audit_channel: int,
) -> None:  # fmt: skip
    flags = operator_flags(operator, second)
    flags["aci-operator"] = boolean_flag(users(operator["id"]))
    flags["not-a-permission"] = boolean_flag(IS_ADMIN)
    write_flags(aci_settings.flags_file, flags, later=10)
    await say(fake, "!aci status web", operator)  # an evaluation notices the edit
    (post,) = await audit_posts(fake, audit_channel, 1)
    assert "**flags reload**" in post["content"] and "`aci-operator`" in post["content"]
    assert "not-a-permission" not in post["content"]


async def test_a_flood_of_entries_is_coalesced_paced_and_the_dropped_are_counted(
    aci_bot: ChatOpsBot, fake: FakeDiscord, audit_channel: int, spans: InMemorySpanExporter
) -> None:
    audit = aci_bot.audit
    assert audit is not None
    audit.interval_s = 0.1
    for n in range(500):
        audit.record(AuditEntry(Actor(f"user{n}"), "aci stop", f"rg/g{n}", "denied"))
    await asyncio.wait_for(audit.idle(), 30)
    posts = fake.messages_in(audit_channel)
    lines = [line for p in posts for line in p["content"].splitlines()]
    shown = [line for line in lines if "**aci stop**" in line]
    # 200 wait at most; 10 lines a post; the rest dropped and counted once.
    assert len(posts) <= 21 and len(shown) == 200
    assert any("300 more not posted" in line for line in lines)
    assert sum(int(s.attributes[schema.AUDIT_DROPPED]) for s in audit_spans(spans)) == 300
    assert all(len(p["content"]) <= 2000 for p in posts)


# -- two-person approval -----------------------------------------------------


async def test_two_person_restart_waits_for_a_second_operator_and_names_both(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], second: dict[str, Any],
    arm: FakeArm, audit_channel: int, spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci restart api", operator)
    assert "Two-person rule" in question["content"]
    labels = [c["label"] for row in question["components"] for c in row["components"]]
    assert labels == ["Approve", "Cancel"]
    # The requester cannot approve their own request; told privately, audited.
    told = await fake.click(question, APPROVE_ID, author=operator)
    assert told is not None and is_ephemeral(told) and told["content"] == OWN_REQUEST
    assert arm.calls("POST", "/restart") == []
    answer = await fake.click(question, APPROVE_ID, author=second)
    assert answer is not None
    root = await settled_root(spans, message)
    assert root.attributes[schema.AZURE_CONFIRMATION] == "approved"
    assert root.attributes[schema.AZURE_TWO_PERSON] is True
    assert root.attributes[schema.AZURE_APPROVER_ID] == second["id"]
    assert root.attributes[schema.AUTHOR_ID] == operator["id"]
    final = fake.world.messages[int(question["id"])]["content"]
    assert final.startswith("\u2705 `api` restarted")
    assert len(arm.calls("POST", "/api/restart")) == 1
    posts = await audit_posts(fake, audit_channel, 2)
    text = "\n".join(p["content"] for p in posts)
    assert "**aci restart approve** `prod-rg/api`" in text and "own request" in text
    (done,) = [line for line in text.splitlines() if line.startswith("\u2705")]
    assert f"by <@{operator['id']}> (olivia): ok" in done
    assert f"approved by <@{second['id']}> (sam)" in done
    assert tid(root) in done
    (refused,) = [
        s
        for s in spans.get_finished_spans()
        if s.name == f"component {APPROVE_ID}" and s.attributes[schema.OUTCOME] == "denied"
    ]
    assert refused.attributes[schema.AUTHOR_ID] == operator["id"]


async def test_two_person_approval_by_a_non_operator_is_refused_and_the_request_expires(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    audit_channel: int, spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci stop api", operator)
    stranger = fake.add_user("mallory")
    told = await fake.click(question, APPROVE_ID, author=stranger)
    assert told is not None and told["content"] == NOT_AN_APPROVER
    root = await settled_root(spans, message)
    assert root.attributes[schema.AZURE_CONFIRMATION] == "timed_out"
    final = fake.world.messages[int(question["id"])]
    assert final["content"] == "No approval within 1.5 s: `api` was not stopped."
    assert final["components"] == []
    assert arm.calls("POST", "/stop") == []
    posts = await audit_posts(fake, audit_channel, 2)
    text = "\n".join(p["content"] for p in posts)
    assert "not an operator" in text and "**aci stop** `prod-rg/api`" in text
    assert ": timed out" in text


async def test_two_person_request_can_be_cancelled_by_the_requester(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci restart api", operator)
    cancelled = await fake.click(question, CANCEL_ID, author=operator)
    assert cancelled is not None and cancelled["content"] == "Cancelled: `api` was not restarted."
    root = await settled_root(spans, message)
    assert root.attributes[schema.AZURE_CONFIRMATION] == "cancelled"
    assert arm.calls("POST", "/restart") == []


async def test_without_the_two_person_flag_the_requester_confirms_alone(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    message, question = await say(fake, "!aci restart web", operator)
    labels = [c["label"] for row in question["components"] for c in row["components"]]
    assert labels == ["Confirm", "Cancel"]
    await fake.click(question, CONFIRM_ID, author=operator)
    root = await settled_root(spans, message)
    assert root.attributes[schema.AZURE_CONFIRMATION] == "confirmed"
    assert schema.AZURE_TWO_PERSON not in root.attributes


async def test_a_denied_slash_change_names_the_group_asked_for(
    aci_bot: ChatOpsBot, fake: FakeDiscord, audit_channel: int, spans: InMemorySpanExporter
) -> None:
    mallory = fake.add_user("mallory")
    answer, root, _ = await run_slash(fake, spans, "/aci stop group:web", author=mallory)
    assert answer["content"] == "You can't use `/aci stop`."
    (post,) = await audit_posts(fake, audit_channel, 1)
    assert post["content"].startswith("\u26d4 **aci stop** `web` by ")
    assert tid(root) in post["content"]


async def test_someone_else_pressing_confirm_is_posted_as_a_denied_attempt(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], second: dict[str, Any],
    audit_channel: int, spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci stop web", operator)
    told = await fake.click(question, CONFIRM_ID, author=second)
    assert told is not None and told["content"] == "Only the person who asked can answer this."
    await fake.click(question, "aci:cancel", author=operator)
    await settled_root(spans, message)
    posts = await audit_posts(fake, audit_channel, 2)
    text = "\n".join(p["content"] for p in posts)
    (refused,) = [line for line in text.splitlines() if "**aci stop confirm**" in line]
    assert f"by <@{second['id']}> (sam): denied" in refused
    assert f"requested by <@{operator['id']}> (olivia)" in refused


async def test_two_person_approval_holds_for_the_slash_command_too(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], second: dict[str, Any],
    arm: FakeArm, spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    command = fake.send_command("/aci restart group:api", author=operator)
    question = await command.wait()
    assert question is not None and "Two-person rule" in question["content"]
    told = await fake.click(question, APPROVE_ID, author=operator)
    assert told is not None and told["content"] == OWN_REQUEST
    await fake.click(question, APPROVE_ID, author=second)
    await until(lambda: interaction_root(spans, command.id) is not None, within=8)
    root = interaction_root(spans, command.id)
    assert root is not None and root.attributes[schema.AZURE_CONFIRMATION] == "approved"
    assert root.attributes[schema.AZURE_APPROVER_ID] == second["id"]
    assert len(arm.calls("POST", "/api/restart")) == 1
