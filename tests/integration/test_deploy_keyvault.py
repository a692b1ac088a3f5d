"""``chatops deploy --key-vault``: the group's secrets come from Key Vault, read by ARM.

The sharded group of ``test_deploy_rolling`` (bot-0, bot-1, the tls sidecar, the commands
file as a secret volume), deployed with an environment that holds no secret at all: each
write of the group is a template deployment whose secure values are Key Vault references,
and the fake ARM resolves them from its vault the way ARM does, on its side.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from click.testing import CliRunner
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from bot.cli.main import cli
from bot.deploy import IMAGE_TAG, DeployFailed, key_vault_template
from telemetry import schema
from tests.fakes.arm import FakeArm
from tests.fakes.tls import SelfSignedCertificate, make_certificate
from tests.helpers.sharded_group import (
    BOTS,
    CADDY,
    CADDYFILE,
    COMMANDS,
    IMAGE,
    PREVIOUS,
    RG,
    deploy_group,
    sharded_group,
)

VAULT = (
    "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/chatops-rg"
    "/providers/Microsoft.KeyVault/vaults/chatops-kv"
)
TOKEN = "vault-discord-token"
DEPLOYMENTS = "/providers/Microsoft.Resources/deployments/"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@pytest.fixture
async def arm(certificate: SelfSignedCertificate) -> AsyncIterator[FakeArm]:
    async with FakeArm(certificate, operation_s=0.05) as fake:
        fake.vault_secrets[(VAULT, "discord-token")] = TOKEN
        fake.vault_secrets[(VAULT, "chatops-commands-toml")] = COMMANDS
        yield fake


async def run(arm: FakeArm, certificate: SelfSignedCertificate, lines: list[str]) -> Any:
    # No secret in the deploy's environment: they are all in the vault.
    return await deploy_group(arm, certificate, lines, {}, key_vault=VAULT)


def deployed_images(arm: FakeArm) -> list[dict[str, str]]:
    images = []
    for put in arm.calls("PUT", ""):
        if DEPLOYMENTS in put.path and put.status == 201:
            (group,) = put.json["properties"]["template"]["resources"]
            images.append(
                {c["name"]: c["properties"]["image"] for c in group["properties"]["containers"]}
            )
    return images


async def test_the_deploy_rolls_the_group_with_secrets_arm_reads_from_the_vault(
    arm: FakeArm, certificate: SelfSignedCertificate, spans: InMemorySpanExporter
) -> None:
    await sharded_group(arm, lambda image: True)
    bot_0 = arm.groups[(RG, "bot")]["properties"]["containers"][0]["properties"]
    bot_0["environmentVariables"].append({"name": "GREETING", "value": "[not an expression]"})
    lines: list[str] = []
    report = await run(arm, certificate, lines)

    # One deployment per container, in order, each waited for; no direct PUT of the group.
    assert deployed_images(arm) == [
        {"bot-0": IMAGE, "bot-1": PREVIOUS, "tls": CADDY},
        {"bot-0": IMAGE, "bot-1": IMAGE, "tls": CADDY},
    ]
    assert arm.calls("PUT", "/containerGroups/bot") == []
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
    # The group has the vault's secrets, which the deploy never saw: what it sent names the
    # vault and the secret, never a value.
    for name in BOTS:
        assert arm.secure_values[(RG, "bot", name, "DISCORD_TOKEN")] == TOKEN
    sent = arm.secret_files[(RG, "bot", "commands", "commands.toml")]
    assert base64.b64decode(sent).decode() == COMMANDS
    (first, *_) = [p for p in arm.calls("PUT", "") if DEPLOYMENTS in p.path]
    parameters = first.json["properties"]["parameters"]
    assert parameters["DISCORD_TOKEN"] == {
        "reference": {"keyVault": {"id": VAULT}, "secretName": "discord-token"}
    }
    assert parameters["COMMANDS__COMMANDS_TOML"]["reference"]["secretName"] == (
        "chatops-commands-toml"
    )
    everything_sent = json.dumps([r.json for r in arm.requests])
    assert TOKEN not in everything_sent and "relationships" not in everything_sent
    # Plain values arrive as they were, a leading "[" included; the sidecar keeps its
    # Caddyfile; the image is recorded where the template reads it.
    group = arm.groups[(RG, "bot")]["properties"]["containers"]
    env = {v["name"]: v.get("value") for v in group[0]["properties"]["environmentVariables"]}
    assert env["GREETING"] == "[not an expression]"
    assert group[2]["properties"]["environmentVariables"] == [
        {"name": "CADDYFILE", "value": CADDYFILE}
    ]
    assert arm.tags[RG] == {IMAGE_TAG: IMAGE}
    finished = spans.get_finished_spans()
    assert TOKEN not in str([s.attributes for s in finished])
    operations = {s.attributes.get(schema.AZURE_OPERATION) for s in finished if s.attributes}
    assert "Microsoft.Resources/deployments/write" in operations
    assert "Microsoft.ContainerInstance/containerGroups/write" not in operations


async def test_a_secret_the_vault_lacks_fails_in_one_line_and_changes_nothing(
    arm: FakeArm, certificate: SelfSignedCertificate, spans: InMemorySpanExporter
) -> None:
    await sharded_group(arm, lambda image: True)
    del arm.vault_secrets[(VAULT, "discord-token")]
    lines: list[str] = []
    with pytest.raises(DeployFailed) as failed:
        await run(arm, certificate, lines)
    message = str(failed.value)
    assert message.startswith("update bot-0: Azure answered 400 ")
    assert "KeyVaultParameterReferenceSecretRetrieveFailed" in message
    assert "'discord-token'" in message and "\n" not in message
    assert "roll" not in message  # nothing was changed, so nothing is rolled back
    group = arm.groups[(RG, "bot")]["properties"]["containers"]
    assert [c["properties"]["image"] for c in group] == [PREVIOUS, PREVIOUS, CADDY]
    assert RG not in arm.tags
    (root,) = [s for s in spans.get_finished_spans() if s.name == schema.DEPLOY_SPAN]
    assert root.attributes is not None
    assert root.attributes[schema.DEPLOY_RESULT] == "failure"


async def test_an_image_azure_cannot_pull_is_rolled_back_through_a_deployment_too(
    arm: FakeArm, certificate: SelfSignedCertificate
) -> None:
    await sharded_group(arm, lambda image: True)
    arm.unpullable_images.add(IMAGE)
    lines: list[str] = []
    with pytest.raises(DeployFailed) as failed:
        await run(arm, certificate, lines)
    message = str(failed.value)
    assert message.startswith("update bot-0: Azure reported InaccessibleImage: The image ")
    assert message.endswith(f"; rolled back to {PREVIOUS}")
    assert deployed_images(arm) == [
        {"bot-0": IMAGE, "bot-1": PREVIOUS, "tls": CADDY},
        {"bot-0": PREVIOUS, "bot-1": PREVIOUS, "tls": CADDY},
    ]
    for name in BOTS:
        assert arm.secure_values[(RG, "bot", name, "DISCORD_TOKEN")] == TOKEN


def test_the_template_sends_every_secure_value_as_a_key_vault_reference() -> None:
    from azure.mgmt.containerinstance.models import ContainerGroup

    group = ContainerGroup.deserialize(
        {
            "name": "bot",
            "location": "westeurope",
            "properties": {
                "osType": "Linux",
                "containers": [
                    {
                        "name": "bot-0",
                        "properties": {
                            "image": IMAGE,
                            "resources": {"requests": {"cpu": 0.5, "memoryInGB": 1.0}},
                            "environmentVariables": [
                                {"name": "DISCORD_TOKEN"},
                                {"name": "HONEYCOMB_API_KEY"},
                                {"name": "CIRCLECI_OTLP_X_HONEYCOMB_TEAM"},
                                {"name": "MY_OWN_SECRET"},
                                {"name": "SHARD_IDS", "value": "0"},
                            ],
                        },
                    }
                ],
                "volumes": [
                    {"name": "caddy-data", "emptyDir": {}},
                    {"name": "commands", "secret": {"commands.toml": None}},
                ],
            },
        }
    )
    template, parameters = key_vault_template(group, VAULT)
    names = {name: ref["reference"]["secretName"] for name, ref in parameters.items()}
    assert names == {
        "DISCORD_TOKEN": "discord-token",
        "HONEYCOMB_API_KEY": "honeycomb-ingest-key",
        "CIRCLECI_OTLP_X_HONEYCOMB_TEAM": "honeycomb-ingest-key",
        "MY_OWN_SECRET": "my-own-secret",
        "COMMANDS__COMMANDS_TOML": "chatops-commands-toml",
    }
    assert set(template["parameters"]) == set(parameters)
    assert {spec["type"] for spec in template["parameters"].values()} == {"securestring"}
    (resource,) = template["resources"]
    env = resource["properties"]["containers"][0]["properties"]["environmentVariables"]
    assert env[0] == {"name": "DISCORD_TOKEN", "secureValue": "[parameters('DISCORD_TOKEN')]"}
    assert env[-1] == {"name": "SHARD_IDS", "value": "0"}
    volumes = {v["name"]: v for v in resource["properties"]["volumes"]}
    assert volumes["commands"]["secret"] == {
        "commands.toml": "[base64(parameters('COMMANDS__COMMANDS_TOML'))]"
    }
    assert "secret" not in volumes["caddy-data"]


def test_a_key_vault_that_is_not_a_resource_id_is_one_line() -> None:
    result = CliRunner().invoke(
        cli, ["deploy", "--group", "bot", "--image", IMAGE, "--key-vault", "chatops-kv"]
    )
    assert result.exit_code == 2
    (line,) = result.output.strip().splitlines()
    assert line.startswith("chatops: --key-vault takes the vault's resource id: ")
