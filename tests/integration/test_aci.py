"""``!aci`` through the real bot, the protocol-level Discord fake and the fake ARM over TLS."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.semconv.attributes.http_attributes import (
    HTTP_REQUEST_METHOD,
    HTTP_RESPONSE_STATUS_CODE,
)
from opentelemetry.semconv.attributes.url_attributes import URL_FULL
from opentelemetry.trace import StatusCode

from bot.azure_wiring import AzureOptions
from bot.client import ChatOpsBot
from bot.config import Settings
from bot.harness import connected_bot
from bot.sandbox import FakeDiscord
from commands.toolkit.confirm import CANCEL_ID, CONFIRM_ID
from telemetry import schema
from tests.fakes.arm import FakeArm, StaticCredential
from tests.fakes.tls import SelfSignedCertificate, make_certificate
from tests.helpers.flag_rules import IS_ADMIN, boolean_flag, users, write_flags
from tests.helpers.sandbox_chat import is_ephemeral, run_slash, settled_root, until
from tests.helpers.trace_finders import children, interaction_root

RG = "chatops-rg"


@pytest.fixture(scope="session")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def arm(certificate: SelfSignedCertificate) -> AsyncIterator[FakeArm]:
    async with FakeArm(certificate, operation_s=0.15) as server:
        server.add_group(
            RG, "web", image="chatops.azurecr.io/web:1.2.0", fqdn="web.westeurope.azurecontainer.io"
        )
        server.add_group(RG, "worker", containers=["worker", "sidecar"], restart_count=2)
        yield server


@pytest.fixture
def operator(fake: FakeDiscord) -> dict[str, Any]:
    return fake.add_user("olivia")


@pytest.fixture
def aci_settings(settings: Settings, arm: FakeArm, operator: dict[str, Any]) -> Settings:
    write_flags(
        settings.flags_file,
        {
            "aci-reader": boolean_flag({"or": [IS_ADMIN, users(operator["id"])]}),
            "aci-operator": boolean_flag({"or": [IS_ADMIN, users(operator["id"])]}),
        },
    )
    return settings.model_copy(
        update={
            "azure_subscription_id": arm.subscription,
            "azure_resource_group": [RG],
            "azure_arm_endpoint": arm.url,
            "azure_poll_interval_s": 0.05,
            "azure_retry_total": 1,
            "azure_confirm_timeout_s": 2.0,
            "azure_operation_timeout_s": 5.0,
            "azure_call_timeout_s": 5.0,
        }
    )


@pytest.fixture
def credential() -> StaticCredential:
    return StaticCredential()


@pytest.fixture
async def aci_bot(
    aci_settings: Settings,
    fake: FakeDiscord,
    spans: InMemorySpanExporter,
    certificate: SelfSignedCertificate,
    credential: StaticCredential,
) -> AsyncIterator[ChatOpsBot]:
    options = AzureOptions(
        credential=credential, transport={"connection_verify": str(certificate.cert_path)}
    )
    async with connected_bot(aci_settings, fake, guild_ready_timeout=0.05, azure=options) as bot:
        yield bot


async def say(
    fake: FakeDiscord, text: str, author: dict[str, Any], wait: float = 5.0
) -> tuple[dict[str, Any], dict[str, Any]]:
    message = fake.send_message(text, author=author)
    async with asyncio.timeout(wait):
        while True:
            replies = [
                m
                for m in fake.bot_messages
                if (m.get("message_reference") or {}).get("message_id") == message["id"]
            ]
            if replies:
                return message, replies[0]
            await asyncio.sleep(0.01)


# -- reads -------------------------------------------------------------------


async def test_list_shows_every_group_with_state_image_and_restarts(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    message, answer = await say(fake, "!aci list", operator)
    text = answer["content"]
    assert "web" in text and "worker" in text and "Running" in text
    assert "chatops.azurecr.io/web:1.2.0" in text
    assert "worker   Running  4" in text or " 4 " in text  # 2 restarts x 2 containers
    root = await settled_root(spans, message)
    assert root.name == "command aci list"
    assert root.attributes[schema.OUTCOME] == "ok"
    (listing,) = children(spans, root, "azure.containerinstance.list")
    assert (
        listing.attributes[schema.AZURE_OPERATION]
        == "Microsoft.ContainerInstance/containerGroups/read"
    )
    assert listing.attributes[schema.AZURE_RESOURCE_ID].endswith(f"/resourceGroups/{RG}")
    gets = children(spans, root, "azure.containerinstance.get")
    assert sorted(g.attributes[schema.AZURE_RESOURCE_ID].rsplit("/", 1)[1] for g in gets) == [
        "web",
        "worker",
    ]
    assert all(g.attributes[schema.COMMAND] == "aci list" for g in gets)
    # The SDK's HTTP request is a child of the ARM span (aiohttp client instrumentation).
    (http,) = children(spans, listing)
    assert http.attributes[HTTP_REQUEST_METHOD] == "GET"
    assert http.attributes[HTTP_RESPONSE_STATUS_CODE] == 200
    assert "Bearer" not in str(http.attributes)


async def test_status_shows_containers_events_and_address(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any]
) -> None:
    _, answer = await say(fake, "!aci status web", operator)
    text = answer["content"]
    assert "**web**" in text and "Running" in text
    assert "web.westeurope.azurecontainer.io" in text and "8080" in text
    assert "Pulled" in text and "Started" in text


async def test_logs_short_output_comes_in_a_code_block_with_backticks_defused(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm
) -> None:
    arm.logs[(RG, "web", "web")] = "first\ntwo ```@everyone```\nthree\n"
    _, answer = await say(fake, "!aci logs web --tail 2", operator)
    text = answer["content"]
    assert text.startswith("```\n") and text.endswith("\n```")
    assert "first" not in text and "three" in text
    assert text.count("```") == 2  # the log's own fences cannot close the block
    assert not fake.would_ping(answer)
    assert arm.calls("GET", "/containers/web/logs")[-1].query["tail"] == "2"


async def test_logs_of_a_named_container_and_long_output_come_as_a_file(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm
) -> None:
    arm.logs[(RG, "worker", "sidecar")] = "".join(
        f"line {i} " + "x" * 60 + "\n" for i in range(200)
    )
    _, answer = await say(fake, "!aci logs worker sidecar --tail 150", operator)
    assert "150 line(s)" in answer["content"]
    (attachment,) = answer["attachments"]
    assert attachment["filename"] == "worker-sidecar.log"
    assert attachment["size"] > 2000


async def test_logs_of_an_unknown_container_names_the_ones_there(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    message, answer = await say(fake, "!aci logs worker nope", operator)
    assert "`worker`" in answer["content"] and "`sidecar`" in answer["content"]
    assert (await settled_root(spans, message)).attributes[schema.OUTCOME] == "bad_input"


# -- errors ------------------------------------------------------------------


async def test_an_unknown_group_is_bad_input_without_error_status(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    message, answer = await say(fake, "!aci status nope", operator)
    assert answer["content"] == f"No container group `nope` in resource group `{RG}`."
    root = await settled_root(spans, message)
    assert root.attributes[schema.OUTCOME] == "bad_input"
    assert root.status.status_code is StatusCode.UNSET
    (get,) = children(spans, root, "azure.containerinstance.get")
    assert get.attributes[schema.AZURE_STATUS] == 404
    assert get.attributes[schema.AZURE_ERROR_CODE] == "ResourceNotFound"


async def test_forbidden_names_the_action_and_the_role_needed(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    arm.fail(
        "POST", "/web/restart", status=403, code="AuthorizationFailed",
        message="The client 'x' does not have authorization to perform action "
        "'Microsoft.ContainerInstance/containerGroups/restart/action'.",
    )  # fmt: skip
    message, question = await say(fake, "!aci restart web", operator)
    await fake.click(question, CONFIRM_ID, author=operator)
    root = await settled_root(spans, message)
    final = fake.world.messages[int(question["id"])]["content"]
    assert "Microsoft.ContainerInstance/containerGroups/restart/action" in final
    assert "Contributor" in final and root.attributes[schema.OUTCOME] == "error"
    assert root.status.status_code is StatusCode.ERROR
    assert f"trace `{format(root.context.trace_id, '032x')}`" in final


async def test_throttling_after_the_sdk_retries_says_when_to_try_again(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    arm.fail("GET", "/containerGroups/web$", status=429, code="TooManyRequests",
             message="Too many requests.", retry_after="0.2", times=5)  # fmt: skip
    message, answer = await say(fake, "!aci status web", operator)
    assert answer["content"].startswith("Azure is throttling; try again in 1 s.")
    root = await settled_root(spans, message)
    (get,) = children(spans, root, "azure.containerinstance.get")
    # One retry (AZURE_RETRY_TOTAL=1) after the Retry-After: two HTTP children.
    assert [c.attributes[HTTP_RESPONSE_STATUS_CODE] for c in children(spans, get)] == [429, 429]
    assert get.attributes[schema.AZURE_RETRY_AFTER_S] == 0.2


async def test_a_slow_arm_times_out_with_a_clear_reply(
    aci_settings: Settings, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter, certificate: SelfSignedCertificate, credential: StaticCredential,
) -> None:  # fmt: skip
    quick = aci_settings.model_copy(update={"azure_call_timeout_s": 0.3})
    options = AzureOptions(
        credential=credential, transport={"connection_verify": str(certificate.cert_path)}
    )
    arm.fail("GET", "/containerGroups/web$", status=None, delay=1.0)
    async with connected_bot(quick, fake, guild_ready_timeout=0.05, azure=options):
        message, answer = await say(fake, "!aci status web", operator)
        assert "Azure did not finish `get` of `web` within 0.3 s" in answer["content"]
        root = await settled_root(spans, message)
        assert root.attributes[schema.OUTCOME] == "error"
        (get,) = children(spans, root, "azure.containerinstance.get")
        assert get.attributes[schema.AZURE_ERROR_CODE] == "Timeout"


async def test_no_credentials_says_how_to_give_the_bot_some(
    aci_settings: Settings, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    certificate: SelfSignedCertificate,
) -> None:  # fmt: skip
    options = AzureOptions(
        credential=StaticCredential(unavailable=True),
        transport={"connection_verify": str(certificate.cert_path)},
    )
    async with connected_bot(aci_settings, fake, guild_ready_timeout=0.05, azure=options):
        _, answer = await say(fake, "!aci list", operator)
        assert answer["content"].startswith("No Azure credentials: set up a managed identity")
        assert arm.requests == []


async def test_without_the_reader_flag_the_command_is_denied_before_any_arm_call(
    aci_bot: ChatOpsBot, fake: FakeDiscord, arm: FakeArm, spans: InMemorySpanExporter
) -> None:
    stranger = fake.add_user("mallory")
    message, answer = await say(fake, "!aci list", stranger)
    assert answer["content"] == "You can't use `!aci list`."
    assert (await settled_root(spans, message)).attributes[schema.OUTCOME] == "denied"
    assert arm.requests == []


async def test_without_configuration_the_commands_say_so(
    fake: FakeDiscord, settings: Settings, spans: InMemorySpanExporter
) -> None:
    write_flags(settings.flags_file, {"aci-reader": boolean_flag(IS_ADMIN)})
    async with connected_bot(settings, fake, guild_ready_timeout=0.05) as bot:
        assert bot.aci is None
        _, answer = await say(fake, "!aci list", fake.world.owner)
        assert answer["content"].startswith("Azure is not configured here")


# -- changes -----------------------------------------------------------------


async def test_restart_asks_then_acknowledges_then_edits_the_same_message(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci restart web", operator)
    assert "Restart container group `web`" in question["content"]
    labels = [c["label"] for row in question["components"] for c in row["components"]]
    assert labels == ["Confirm", "Cancel"]
    assert arm.calls("POST", "/restart") == []  # nothing happens before the answer
    press = fake.press(question, CONFIRM_ID, author=operator)
    assert await press.wait() is not None
    (ack,) = press.callbacks
    assert ack["type"] == 7 and ack["data"]["content"].startswith("\u23f3 Restarting `web`")
    assert ack["data"]["components"] == []
    root = await settled_root(spans, message)
    final = fake.world.messages[int(question["id"])]
    assert final["content"].startswith("\u2705 `web` restarted in ")
    assert "`web` Running" in final["content"]
    assert any("/operations/" in r.path for r in arm.requests)
    assert root.attributes[schema.AZURE_CONFIRMATION] == "confirmed"
    assert root.attributes[schema.OUTCOME] == "ok"
    (restart,) = children(spans, root, "azure.containerinstance.restart")
    assert (
        restart.attributes[schema.AZURE_OPERATION]
        == "Microsoft.ContainerInstance/containerGroups/restart/action"
    )
    assert restart.attributes[schema.AZURE_RESOURCE_ID] == arm.resource_id(RG, "web")
    polls = [c for c in children(spans, restart) if "/operations/" in str(c.attributes[URL_FULL])]
    assert polls, "the LRO polls are children of the ARM span"
    sends = children(spans, root, schema.SEND_SPAN)
    assert len(sends) == 3  # question, acknowledgement (interaction), final edit


async def test_stop_cancelled_does_nothing(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci stop web", operator)
    answer = await fake.click(question, CANCEL_ID, author=operator)
    assert answer is not None and answer["content"] == "Cancelled: `web` was not stopped."
    root = await settled_root(spans, message)
    assert root.attributes[schema.AZURE_CONFIRMATION] == "cancelled"
    assert arm.calls("POST", "/stop") == []


async def test_only_the_requester_can_confirm_and_unanswered_questions_time_out(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci stop web", operator)
    other = fake.press(question, CONFIRM_ID, author=fake.world.owner)
    told = await other.wait()
    assert other.callbacks[0]["type"] == 4 and told is not None and is_ephemeral(told)
    assert told["content"] == "Only the person who asked can answer this."
    root = await settled_root(spans, message)
    final = fake.world.messages[int(question["id"])]
    assert final["content"] == "No answer within 2 s: `web` was not stopped."
    assert final["components"] == []
    assert root.attributes[schema.AZURE_CONFIRMATION] == "timed_out"
    assert arm.calls("POST", "/stop") == []


async def test_stop_confirmed_stops_the_group(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    message, question = await say(fake, "!aci stop web", operator)
    await fake.click(question, CONFIRM_ID, author=operator)
    await settled_root(spans, message)
    final = fake.world.messages[int(question["id"])]["content"]
    assert final.startswith("\u2705 `web` stopped") and "Terminated" in final


async def test_start_acknowledges_at_once_and_edits_on_completion(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    message, ack = await say(fake, "!aci start worker", operator)
    assert ack["content"].startswith("\u23f3 Starting `worker`")
    await settled_root(spans, message)
    assert fake.world.messages[int(ack["id"])]["content"].startswith("\u2705 `worker` started")


async def test_several_operations_at_once_do_not_interfere(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    arm.operation_s = 0.5
    arm.fail("POST", "/worker/start", status=None, delay=0.3)
    (m1, a1), (m2, a2) = await asyncio.gather(
        say(fake, "!aci start web", operator), say(fake, "!aci start worker", operator)
    )
    r1, r2 = await settled_root(spans, m1), await settled_root(spans, m2)
    assert fake.world.messages[int(a1["id"])]["content"].startswith("\u2705 `web` started")
    assert fake.world.messages[int(a2["id"])]["content"].startswith("\u2705 `worker` started")
    assert r1.context.trace_id != r2.context.trace_id
    (s1,) = children(spans, r1, "azure.containerinstance.start")
    (s2,) = children(spans, r2, "azure.containerinstance.start")
    assert s1.attributes[schema.AZURE_RESOURCE_ID].endswith("/web")
    assert s2.attributes[schema.AZURE_RESOURCE_ID].endswith("/worker")
    # They overlapped in time rather than queueing behind each other.
    assert s1.start_time < s2.end_time and s2.start_time < s1.end_time


async def test_an_operation_that_outlasts_the_bounded_wait_is_reported_in_place(
    aci_settings: Settings, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter, certificate: SelfSignedCertificate, credential: StaticCredential,
) -> None:  # fmt: skip
    arm.operation_s = 5.0
    quick = aci_settings.model_copy(update={"azure_operation_timeout_s": 0.4})
    options = AzureOptions(
        credential=credential, transport={"connection_verify": str(certificate.cert_path)}
    )
    async with connected_bot(quick, fake, guild_ready_timeout=0.05, azure=options):
        message, ack = await say(fake, "!aci start web", operator)
        root = await settled_root(spans, message)
        final = fake.world.messages[int(ack["id"])]["content"]
        assert final.startswith("\u274c Start of `web` failed: Azure did not finish `start`")
        assert root.attributes[schema.OUTCOME] == "error"
        assert (
            len(
                [
                    m
                    for m in fake.bot_messages
                    if m.get("message_reference", {}).get("message_id") == message["id"]
                ]
            )
            == 1
        )


# -- as slash commands -------------------------------------------------------


def finished_named(spans: InMemorySpanExporter, name: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if s.name == name]


async def test_slash_list_is_deferred_then_answered_inside_the_interaction_trace(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], spans: InMemorySpanExporter
) -> None:
    answer, root, interaction = await run_slash(fake, spans, "/aci list", author=operator)
    assert "web" in answer["content"] and "worker" in answer["content"]
    assert "chatops.azurecr.io/web:1.2.0" in answer["content"]
    assert not is_ephemeral(answer)
    # Expensive: "thinking…" before Azure is called, then the follow-up replaces it.
    assert [c["type"] for c in interaction.callbacks] == [5]
    assert interaction.followups == [answer]
    assert root.name == "command aci list"
    assert root.attributes[schema.INTERACTION_TYPE] == "application_command"
    assert root.attributes[schema.OUTCOME] == "ok"
    (listing,) = children(spans, root, "azure.containerinstance.list")
    assert listing.attributes[schema.COMMAND] == "aci list"
    assert len(children(spans, root, "azure.containerinstance.get")) == 2


async def test_slash_list_without_the_reader_flag_is_denied_privately(
    aci_bot: ChatOpsBot, fake: FakeDiscord, arm: FakeArm, spans: InMemorySpanExporter
) -> None:
    answer, root, _ = await run_slash(fake, spans, "/aci list", author=fake.add_user("mallory"))
    assert is_ephemeral(answer) and answer["content"] == "You can't use `/aci list`."
    assert root.attributes[schema.OUTCOME] == "denied"
    assert arm.requests == []


async def test_group_names_autocomplete_for_readers_from_one_cached_listing(
    aci_bot: ChatOpsBot, fake: FakeDiscord, arm: FakeArm, operator: dict[str, Any]
) -> None:
    choices = await fake.autocomplete("/aci status group:w", author=operator)
    assert choices == [{"name": "web", "value": "web"}, {"name": "worker", "value": "worker"}]
    narrowed = await fake.autocomplete("/aci restart group:wor", author=operator)
    assert narrowed == [{"name": "worker", "value": "worker"}]
    # Names only, one list call, remembered between keystrokes: no per-group reads.
    assert [r.method for r in arm.requests] == ["GET"]
    assert arm.requests[0].path.endswith("/containerGroups")


async def test_group_names_are_not_offered_to_someone_without_the_reader_flag(
    aci_bot: ChatOpsBot, fake: FakeDiscord, arm: FakeArm
) -> None:
    assert await fake.autocomplete("/aci status group:w", author=fake.add_user("mallory")) == []
    assert arm.requests == []


async def test_slash_restart_confirmed_by_button_is_a_linked_trace_of_its_own(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    command = fake.send_command("/aci restart web", author=operator)
    question = await command.wait()
    assert question is not None and "Restart container group `web`" in question["content"]
    assert [c["label"] for row in question["components"] for c in row["components"]] == [
        "Confirm",
        "Cancel",
    ]
    assert arm.calls("POST", "/restart") == []

    press = fake.press(question, CONFIRM_ID, author=operator)
    assert await press.wait() is not None
    (ack,) = press.callbacks
    assert ack["type"] == 7 and ack["data"]["content"].startswith("\u23f3 Restarting `web`")
    assert ack["data"]["components"] == []

    await until(lambda: interaction_root(spans, command.id) is not None, within=8)
    root = interaction_root(spans, command.id)
    assert root is not None and root.name == "command aci restart"
    assert root.attributes[schema.OUTCOME] == "ok"
    assert root.attributes[schema.AZURE_CONFIRMATION] == "confirmed"
    final = fake.world.messages[int(question["id"])]["content"]
    assert final.startswith("\u2705 `web` restarted in ") and "`web` Running" in final
    (restart,) = children(spans, root, "azure.containerinstance.restart")
    assert restart.attributes[schema.AZURE_RESOURCE_ID] == arm.resource_id(RG, "web")

    # The press: its own root span, linked to the command's root, covering the acknowledgement.
    (click,) = finished_named(spans, f"component {CONFIRM_ID}")
    assert click.parent is None
    assert click.context.trace_id != root.context.trace_id
    (link,) = click.links
    assert (link.context.trace_id, link.context.span_id) == (
        root.context.trace_id,
        root.context.span_id,
    )
    assert click.attributes[schema.INTERACTION_TYPE] == "component"
    assert click.attributes[schema.COMPONENT_ID] == CONFIRM_ID
    assert click.attributes[schema.COMMAND] == "aci restart"
    assert click.attributes[schema.MESSAGE_ID] == question["id"]
    assert click.attributes[schema.OUTCOME] == "ok"
    (ack_send,) = [
        s
        for s in children(spans, root, schema.SEND_SPAN)
        if str(s.attributes.get(schema.RESPONSE, "")).startswith("\u23f3")
    ]
    assert click.end_time is not None and ack_send.end_time is not None
    assert click.end_time >= ack_send.end_time


async def test_a_press_by_someone_else_is_denied_in_its_own_linked_span(
    aci_bot: ChatOpsBot, fake: FakeDiscord, operator: dict[str, Any], arm: FakeArm,
    spans: InMemorySpanExporter,
) -> None:  # fmt: skip
    command = fake.send_command("/aci stop web", author=operator)
    question = await command.wait()
    assert question is not None
    told = await fake.click(question, CONFIRM_ID, author=fake.world.owner)
    assert told is not None and is_ephemeral(told)
    assert told["content"] == "Only the person who asked can answer this."
    (click,) = finished_named(spans, f"component {CONFIRM_ID}")
    assert click.attributes[schema.OUTCOME] == "denied"
    assert click.attributes[schema.RESPONSE] == told["content"]
    assert click.links and click.links[0].context.trace_id != click.context.trace_id
    cancelled = await fake.click(question, CANCEL_ID, author=operator)
    assert cancelled is not None and cancelled["content"] == "Cancelled: `web` was not stopped."
    await until(lambda: interaction_root(spans, command.id) is not None, within=8)
    root = interaction_root(spans, command.id)
    assert root is not None and root.attributes[schema.AZURE_CONFIRMATION] == "cancelled"
    assert str(root.attributes[schema.RESPONSE]).startswith("Cancelled")
    assert arm.calls("POST", "/stop") == []
