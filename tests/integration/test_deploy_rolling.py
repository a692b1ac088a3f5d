"""``chatops deploy`` of a sharded group: two bot containers rolled one at a time against the
fake ARM, each waiting for its own ``/readyz``, and rolled back as one.

The group is what ``infra/aci/main.bicep`` deploys with two shard ranges: ``bot-0`` and
``bot-1`` (each its own health port) and the ``tls`` sidecar (another image, left alone).
Each container's ``/readyz`` is a local server that answers from the fake ARM's state, the
way the bot would: 200 only while that container runs an image that works.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.deploy import IMAGE_TAG, DeployFailed
from telemetry import schema
from tests.fakes.arm import FakeArm
from tests.fakes.tls import SelfSignedCertificate, make_certificate
from tests.helpers.sharded_group import (
    BOTS,
    CADDY,
    CADDYFILE,
    COMMANDS,
    ENV,
    IMAGE,
    PREVIOUS,
    RG,
    deploy_group,
    sharded_group,
)


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def arm(certificate: SelfSignedCertificate) -> AsyncIterator[FakeArm]:
    async with FakeArm(certificate, operation_s=0.05) as fake:
        yield fake


def put_images(arm: FakeArm) -> list[dict[str, str]]:
    return [
        {c["name"]: c["properties"]["image"] for c in put.json["properties"]["containers"]}
        for put in arm.calls("PUT", "/containerGroups/bot")
    ]


async def test_a_two_container_deploy_rolls_one_container_at_a_time_each_ready_first(
    arm: FakeArm, certificate: SelfSignedCertificate, spans: InMemorySpanExporter
) -> None:
    servers = await sharded_group(arm, lambda image: True)
    lines: list[str] = []
    report = await deploy_group(arm, certificate, lines)

    # One PUT per container, in order; the sidecar keeps its own image throughout.
    assert put_images(arm) == [
        {"bot-0": IMAGE, "bot-1": PREVIOUS, "tls": CADDY},
        {"bot-0": IMAGE, "bot-1": IMAGE, "tls": CADDY},
    ]
    # bot-0 was ready on the new image while bot-1 still ran the old one: bot-1 was
    # touched only after bot-0's /readyz answered 200.
    first_ready = next(images for status, images in servers[0].answers if status == 200)
    assert first_ready == {"bot-0": IMAGE, "bot-1": PREVIOUS, "tls": CADDY}
    assert servers[1].answers[-1] == (200, {"bot-0": IMAGE, "bot-1": IMAGE, "tls": CADDY})
    assert [line.rsplit(None, 2)[0] for line in lines] == [
        "read",
        "update bot-0",
        "running bot-0",
        "ready bot-0",
        "update bot-1",
        "running bot-1",
        "ready bot-1",
        "record",
    ]
    assert report.summary().startswith(f"deployed {IMAGE} to bot in ")
    # Both containers kept their secure value, the commands file its content, the sidecar
    # its Caddyfile, and the image is where the template reads it.
    for name in BOTS:
        assert arm.secure_values[(RG, "bot", name, "DISCORD_TOKEN")] == "new-secret"
    sent = arm.secret_files[(RG, "bot", "commands", "commands.toml")]
    assert base64.b64decode(sent).decode() == COMMANDS
    for put in arm.calls("PUT", "/containerGroups/bot"):
        (tls,) = [c for c in put.json["properties"]["containers"] if c["name"] == "tls"]
        assert tls["properties"]["environmentVariables"] == [
            {"name": "CADDYFILE", "value": CADDYFILE}
        ]
    assert arm.tags[RG] == {IMAGE_TAG: IMAGE}
    (root,) = [s for s in spans.get_finished_spans() if s.name == schema.DEPLOY_SPAN]
    assert root.attributes is not None
    assert root.attributes[schema.DEPLOY_CONTAINER] == "bot-0,bot-1"
    assert root.attributes[schema.DEPLOY_RESULT] == "success"


async def test_when_the_second_container_never_gets_ready_both_roll_back_in_one_put(
    arm: FakeArm, certificate: SelfSignedCertificate, spans: InMemorySpanExporter
) -> None:
    await sharded_group(arm, lambda image: image != IMAGE)
    lines: list[str] = []
    with pytest.raises(DeployFailed) as failed:
        await deploy_group(arm, certificate, lines)

    assert str(failed.value).startswith("ready: http://127.0.0.1:")
    assert str(failed.value).endswith(f"; rolled back to {PREVIOUS}")
    assert put_images(arm) == [
        {"bot-0": IMAGE, "bot-1": PREVIOUS, "tls": CADDY},
        {"bot-0": IMAGE, "bot-1": IMAGE, "tls": CADDY},
        {"bot-0": PREVIOUS, "bot-1": PREVIOUS, "tls": CADDY},  # the rollback: one PUT
    ]
    group = arm.groups[(RG, "bot")]["properties"]["containers"]
    assert {c["name"]: c["properties"]["instanceView"]["currentState"]["state"] for c in group}[
        "bot-1"
    ] == "Running"
    assert RG not in arm.tags  # a failed deploy records nothing for the template
    assert lines[-1].startswith("rollback")
    (root,) = [s for s in spans.get_finished_spans() if s.name == schema.DEPLOY_SPAN]
    assert root.attributes is not None
    assert root.attributes[schema.DEPLOY_RESULT] == "rolled_back"


async def test_a_missing_commands_file_refuses_before_changing_anything(
    arm: FakeArm, certificate: SelfSignedCertificate
) -> None:
    await sharded_group(arm, lambda image: True)
    lines: list[str] = []
    with pytest.raises(DeployFailed, match="COMMANDS__COMMANDS_TOML must be set here"):
        await deploy_group(arm, certificate, lines, {"DISCORD_TOKEN": "new-secret"})
    with pytest.raises(DeployFailed, match="DISCORD_TOKEN must be set here"):
        await deploy_group(arm, certificate, lines, {**ENV, "DISCORD_TOKEN": ""})
    assert arm.calls("PUT", "/containerGroups/bot") == []


async def test_a_tag_azure_refuses_leaves_the_new_image_running_and_says_what_it_means(
    arm: FakeArm, certificate: SelfSignedCertificate, spans: InMemorySpanExporter
) -> None:
    await sharded_group(arm, lambda image: True)
    arm.fail("PATCH", "/tags/default", status=403, code="AuthorizationFailed", message="no")
    with pytest.raises(DeployFailed) as failed:
        await deploy_group(arm, certificate, [])
    message = str(failed.value)
    assert message.startswith(f"{IMAGE} runs, but record: The bot's Azure identity may not do ")
    assert "Microsoft.Resources/tags/write" in message
    assert "would go back to the image in the tag chatops-bot-image" in message
    assert len(arm.calls("PUT", "/containerGroups/bot")) == 2  # no rollback of a good image
    (root,) = [s for s in spans.get_finished_spans() if s.name == schema.DEPLOY_SPAN]
    assert root.attributes is not None
    assert root.attributes[schema.DEPLOY_RESULT] == "failure"
