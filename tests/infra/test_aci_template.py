"""The ACI template, read the way ARM would deploy it: ``main.json`` evaluated offline
(``tests/infra/arm_eval.py``) for given parameters, and ``main.bicep`` compared with it.

No Bicep compiler or Azure is reachable here; the workflow's ``bicep`` job builds
``main.bicep`` with ``az bicep build`` and fails when the result differs from ``main.json``.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.infra.arm_eval import Template

ROOT = Path(__file__).resolve().parents[2]
BICEP = ROOT / "infra" / "aci" / "main.bicep"
ARM = ROOT / "infra" / "aci" / "main.json"
GROUPS = "Microsoft.ContainerInstance/containerGroups"
SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSW|KEY|CREDENTIAL", re.IGNORECASE)
SECURE_ENV = {
    "DISCORD_TOKEN",
    "HONEYCOMB_API_KEY",
    "HONEYCOMB_MARKER_KEY",
    "CIRCLECI_HOOK_SECRET",
    "BUILDKITE_API_TOKEN",
    "CIRCLECI_TOKEN",
    "CIRCLECI_OTLP_X_HONEYCOMB_TEAM",
}
REQUIRED = {
    "image": "acr.example/chatops-bot:2.0.0",
    "registryLoginServer": "acr.example",
    "identityName": "chatops-bot",
    "discordToken": "discord-secret",
}
EVERYTHING = {
    **REQUIRED,
    "honeycombApiKey": "hc-ingest",
    "honeycombMarkerKey": "hc-config",
    "circleciHookSecret": "circle-secret",
    "circleciOtlpEndpoint": "https://otlp.example",
    "buildkiteApiToken": "bk-token",
    "buildkiteOrg": "acme",
    "circleciToken": "cc-token",
    "circleciProjects": "gh/acme/app",
    "commandsToml": '[[command]]\nname = "relationships"\n',
    "publicHostname": "chatops.example.org",
}


def arm() -> dict[str, Any]:
    data: dict[str, Any] = json.loads(ARM.read_text())
    return data


def deploy(**parameters: Any) -> Template:
    return Template(arm(), {**REQUIRED, **parameters})


def containers(template: Template) -> dict[str, dict[str, Any]]:
    group = template.resource(GROUPS)
    return {c["name"]: c["properties"] for c in group["properties"]["containers"]}


def env(container: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container.get("environmentVariables", [])}


def caddyfile(template: Template) -> str:
    """The sidecar writes its Caddyfile from a plain variable (a PUT by chatops deploy, which
    echoes what GET returned, keeps it; a secret volume's content would not come back)."""
    tls = containers(template)["tls"]
    assert "$CADDYFILE" in tls["command"][-1] and "caddy run" in tls["command"][-1]
    return str(env(tls)["CADDYFILE"]["value"])


def expressions(node: object) -> Iterator[str]:
    if isinstance(node, str):
        if node.startswith("[") and node.endswith("]"):
            yield node
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from expressions(key)
            yield from expressions(value)
    elif isinstance(node, list):
        for value in node:
            yield from expressions(value)


def test_arm_template_expressions_only_name_declared_parameters_and_variables() -> None:
    template = arm()
    declared = set(template["variables"]) | {
        loop["name"] for loop in template["variables"].get("copy", [])
    }
    for expression in expressions(template):
        for name in re.findall(r"parameters\('([^']+)'\)", expression):
            assert name in template["parameters"], expression
        for name in re.findall(r"variables\('([^']+)'\)", expression):
            assert name in declared, expression


def test_arm_template_takes_secrets_only_as_secure_parameters() -> None:
    parameters = arm()["parameters"]
    secure = {"discordToken", "honeycombApiKey", "honeycombMarkerKey", "circleciHookSecret"}
    secure |= {"buildkiteApiToken", "commandsToml"}
    for name in secure:
        assert parameters[name]["type"] == "securestring", name
    assert "defaultValue" not in parameters["discordToken"]
    for name, spec in parameters.items():
        if SECRET_NAME.search(name):
            assert spec["type"] == "securestring", name


def test_secrets_reach_the_bot_only_as_secure_values() -> None:
    template = deploy(**EVERYTHING)
    secrets = {v for k, v in EVERYTHING.items() if arm()["parameters"][k]["type"] == "securestring"}
    seen: set[str] = set()
    for name, container in containers(template).items():
        for var in env(container).values():
            if "secureValue" in var:
                assert var["name"] in SECURE_ENV, (name, var["name"])
                seen.add(var["name"])
            assert var.get("value") not in secrets, (name, var["name"])
    assert seen == SECURE_ENV
    # Nothing secret is written where az container show would print it.
    shown = json.dumps({k: v for k, v in template.resource(GROUPS).items() if k != "properties"})
    assert not [s for s in secrets if s in shown]


def test_empty_optional_secrets_leave_their_variables_out() -> None:
    names = set().union(*(env(c) for c in containers(deploy()).values()))
    assert not names & (SECURE_ENV - {"DISCORD_TOKEN"})
    assert "COMMANDS_FILE" not in names and "WEBHOOK_PORT" not in names


def test_the_commands_file_is_a_secret_volume_the_bot_reads() -> None:
    template = deploy(**EVERYTHING)
    group = template.resource(GROUPS)["properties"]
    (volume,) = [v for v in group["volumes"] if v["name"] == "commands"]
    assert set(volume) == {"name", "secret"}  # a secret volume, never a plain one
    content = base64.b64decode(volume["secret"]["commands.toml"]).decode()
    assert content == EVERYTHING["commandsToml"]
    for name, container in containers(template).items():
        if name == "tls":
            assert "commands" not in json.dumps(container.get("volumeMounts", []))
            continue
        (mount,) = [m for m in container["volumeMounts"] if m["name"] == "commands"]
        assert mount["readOnly"] is True
        assert env(container)["COMMANDS_FILE"]["value"] == f"{mount['mountPath']}/commands.toml"
    assert [v["name"] for v in deploy().resource(GROUPS)["properties"]["volumes"]] == ["caddy-data"]


def test_the_bot_uses_its_managed_identity_and_nothing_else() -> None:
    for name, container in containers(deploy()).items():
        if name == "tls":
            continue
        variables = env(container)
        assert variables["AZURE_TOKEN_CREDENTIALS"]["value"] == "ManagedIdentityCredential"
        assert (
            "clientId of <resourceId Microsoft.ManagedIdentity/userAssignedIdentities/"
            in (variables["AZURE_CLIENT_ID"]["value"])
        )
        assert variables["AZURE_SUBSCRIPTION_ID"]["value"] == "SUB"
        assert variables["AZURE_RESOURCE_GROUP"]["value"] == "rg"


def test_arm_template_pulls_from_acr_with_the_user_assigned_identity() -> None:
    group = deploy().resource(GROUPS)
    assert group["identity"]["type"] == "UserAssigned"
    (identity_key,) = group["identity"]["userAssignedIdentities"]
    assert "userAssignedIdentities/chatops-bot" in identity_key
    (credential,) = group["properties"]["imageRegistryCredentials"]
    assert credential == {"server": "acr.example", "identity": identity_key}
    assert containers(deploy())["tls"]["image"] == "acr.example/caddy:2"


def test_only_the_tls_sidecar_is_public_and_only_the_webhook_path_passes() -> None:
    template = deploy(publicHostname="chatops.example.org", shardCount=2)
    group = template.resource(GROUPS)["properties"]
    address = group["ipAddress"]
    assert [p["port"] for p in address["ports"]] == [80, 443]
    assert address["autoGeneratedDomainNameLabelScope"] == "TenantReuse"
    assert address["dnsNameLabel"] == "chatops-bot"
    # Inside the group each bot container declares its health port (bot-0 also the
    # webhook's); none of them is among the group's public ports.
    inside = {n: [p["port"] for p in c["ports"]] for n, c in containers(template).items()}
    assert inside == {"bot-0": [8080], "bot-1": [8081], "tls": [80, 443]}
    assert containers(deploy(**EVERYTHING))["bot-0"]["ports"][1]["port"] == 9000
    tls = containers(template)["tls"]
    assert [p["port"] for p in tls["ports"]] == [80, 443]
    text = caddyfile(template)
    assert text.splitlines()[4] == "chatops.example.org {"  # the certificate's name
    routes = re.findall(r"handle (\S+) \{", text)
    assert routes == ["/hooks/circleci", "/readyz/bot-0", "/readyz/bot-1"]
    assert "reverse_proxy 127.0.0.1:9000" in text  # the webhook port of bot-0
    assert re.search(r"handle \{\s+respond 404\s+\}", text)  # everything else
    assert "/healthz" not in text and "admin off" in text
    assert "localhost {" in caddyfile(deploy())  # no public name yet: no public certificate


@pytest.mark.parametrize(
    ("shards", "per", "expected"),
    [
        (1, 1, [[0]]),
        (4, 2, [[0, 1], [2, 3]]),
        (5, 2, [[0, 1], [2, 3], [4]]),
        (3, 8, [[0, 1, 2]]),
        (12, 1, [[i] for i in range(12)]),
    ],
)
def test_one_bot_container_per_range_of_shards(
    shards: int, per: int, expected: list[list[int]]
) -> None:
    template = deploy(shardCount=shards, shardsPerContainer=per, **{
        k: v for k, v in EVERYTHING.items() if k not in REQUIRED
    })  # fmt: skip
    bots = {n: c for n, c in containers(template).items() if n != "tls"}
    assert list(bots) == [f"bot-{i}" for i in range(len(expected))]
    assert template.output("botContainerNames") == list(bots)
    assert list(containers(template))[-1] == "tls"
    for i, (name, container) in enumerate(bots.items()):
        variables = env(container)
        ids = [int(s) for s in variables["SHARD_IDS"]["value"].split(",")]
        assert ids == expected[i], name
        assert variables["SHARD_COUNT"]["value"] == str(shards)
        port = 8080 + i
        assert variables["HEALTH_PORT"]["value"] == str(port)
        assert container["livenessProbe"]["httpGet"] == {
            "path": "/healthz",
            "port": port,
            "scheme": "http",
        }
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["readinessProbe"]["httpGet"]["port"] == port
        assert container["image"] == REQUIRED["image"]
        # The webhook receiver and the CI pollers: exactly one container.
        everything = {
            "CIRCLECI_HOOK_SECRET",
            "CIRCLECI_OTLP_X_HONEYCOMB_TEAM",
            "BUILDKITE_API_TOKEN",
            "CIRCLECI_TOKEN",
            "CIRCLECI_PROJECTS",
            "WEBHOOK_PORT",
        }
        intake = everything & set(variables)
        assert intake == (everything if i == 0 else set()), name
        assert variables["CI_INTAKE"]["value"] == ("true" if i == 0 else "false"), name
        assert "DISCORD_TOKEN" in variables
    assert template.resource(GROUPS)["properties"]["restartPolicy"] == "Always"
    # One network namespace for the whole group: no two containers may listen on one port.
    ports = [p["port"] for c in containers(template).values() for p in c["ports"]]
    assert len(ports) == len(set(ports)), sorted(ports)


def test_without_an_image_the_template_keeps_what_chatops_deploy_rolled_out() -> None:
    parameters = {k: v for k, v in REQUIRED.items() if k != "image"}
    tagged = Template(
        arm(), parameters, resource_group={"tags": {"chatops-bot-image": "acr.example/bot:9"}}
    )
    assert {c["image"] for n, c in containers(tagged).items() if n != "tls"} == {
        "acr.example/bot:9"
    }
    explicit = deploy(image="acr.example/bot:10")
    assert containers(explicit)["bot-0"]["image"] == "acr.example/bot:10"
    with pytest.raises(KeyError):  # no tag and no image: ARM refuses, nothing is deployed
        containers(Template(arm(), parameters))


def test_the_template_rejects_a_dns_scope_azure_does_not_know() -> None:
    with pytest.raises(ValueError, match="dnsNameLabelScope"):
        deploy(dnsNameLabelScope="Global")
    with pytest.raises(ValueError, match="shardCount"):
        deploy(shardCount=0)


def test_arm_template_outputs_the_identity_the_fqdn_and_the_containers() -> None:
    template = deploy(shardCount=2)
    assert "principalId" in template.output("identityPrincipalId")
    assert "fqdn of" in template.output("fqdn")
    assert template.output("containerGroupName") == "chatops-bot"
    assert template.output("botContainerNames") == ["bot-0", "bot-1"]


# Bicep and its compiled JSON agree: parsed with pycep-parser (a Bicep grammar), no compiler.


def bicep() -> dict[str, Any]:
    pycep = pytest.importorskip("pycep", reason="pycep-parser missing")
    parsed: dict[str, Any] = pycep.BicepParser().parse(file_path=BICEP)
    return parsed


def description(decorators: list[dict[str, Any]]) -> str | None:
    for decorator in decorators:
        if decorator["type"] == "description":
            return str(decorator["argument"]).replace("\\'", "'")
    return None


def test_bicep_and_arm_json_declare_the_same_parameters() -> None:
    source, compiled = bicep()["parameters"], arm()["parameters"]
    assert list(source) == list(compiled)
    for name, spec in source.items():
        secure = any(d["type"] == "secure" for d in spec["decorators"])
        expected_type = ("secure" if secure else "") + spec["type"]
        assert compiled[name]["type"] == expected_type, name
        assert description(spec["decorators"]) == compiled[name]["metadata"]["description"], name
        allowed = [d["argument"] for d in spec["decorators"] if d["type"] == "allowed"]
        assert allowed == ([compiled[name]["allowedValues"]] if allowed else []), name
        default, compiled_default = spec["default"], compiled[name].get("defaultValue")
        if isinstance(compiled_default, str) and compiled_default.startswith("["):
            continue  # an expression (pycep reads `= name` as the string "name")
        if isinstance(default, str | int | bool):
            assert compiled_default == default, name
        elif default is None:
            assert "defaultValue" not in compiled[name], name


def test_bicep_and_arm_json_declare_the_same_resources_variables_and_outputs() -> None:
    source, compiled = bicep(), arm()
    deployed = [
        (r["type"], r["api_version"], "condition" in r["config"])
        for r in source["resources"].values()
        if not r["existing"]
    ]
    assert deployed == [
        (r["type"], r["apiVersion"], "condition" in r) for r in compiled["resources"]
    ]
    variables = set(compiled["variables"]) - {"copy"}
    variables |= {loop["name"] for loop in compiled["variables"].get("copy", [])}
    assert set(source["variables"]) == variables
    assert list(source["outputs"]) == list(compiled["outputs"])
    for name, spec in source["outputs"].items():
        assert spec["type"] == compiled["outputs"][name]["type"]
        assert (
            description(spec["decorators"]) == compiled["outputs"][name]["metadata"]["description"]
        )


def test_bicep_and_arm_json_set_the_same_environment_variables_and_actions() -> None:
    text, compiled = BICEP.read_text(), json.dumps(arm())
    in_bicep = re.findall(r"name: '([A-Z_]+)'", text)
    in_json = re.findall(r"'name', '([A-Z_]+)'|\"name\": \"([A-Z_]+)\"", compiled)
    assert sorted(in_bicep) == sorted(a or b for a, b in in_json)
    secure_bicep = re.findall(r"name: '([A-Z_]+)'\s+secureValue:", text)
    secure_json = re.findall(r"'name', '([A-Z_]+)', 'secureValue'", compiled)
    assert sorted(secure_bicep) == sorted(secure_json) == sorted(SECURE_ENV)
    actions_bicep = re.findall(r"'(Microsoft\.[A-Za-z]+/[^']+)'", text)
    actions_json = [a for a in re.findall(r"\"(Microsoft\.[A-Za-z]+/[^\"]+/[a-z]+)\"", compiled)]
    role_actions = [a for a in actions_bicep if a.split("/")[-1] in {"read", "write", "action"}]
    assert sorted(role_actions) == sorted(
        a for a in actions_json if a.split("/")[-1] in {"read", "write", "action"}
    )


def test_arm_json_renders_loops_as_bicep_does() -> None:
    # `[for i in range(0, n): ...]` compiles to a copy whose item is `range(0, n)[copyIndex()]`,
    # never a bare copyIndex(): that is Bicep's output (its docs and its own tests), so the
    # workflow's diff against `az bicep build` sees the same text. A bare copyIndex() would be
    # the same value at run time, and a guaranteed diff.
    compiled = json.dumps(arm())
    uses = re.findall(r"(.{0,60})copyIndex\(", compiled)
    assert uses, "main.json has no loop"
    for before in uses:
        assert re.search(r"range\(0, [^\[]+\)\[$", before), before
    loops = [*arm()["variables"]["copy"], *arm()["resources"][-1]["properties"]["copy"]]
    loops.append({**arm()["outputs"]["botContainerNames"]["copy"], "name": ""})
    for loop in loops:
        # count is length(<the same range the items index>)
        (source,) = set(re.findall(r"(range\(0, .+?\))\[copyIndex", loop["input"]))
        assert loop["count"] == f"[length({source})]", loop["name"]


# The parameter examples: every secret from Key Vault at deployment time, none in the file.


def test_the_parameters_example_takes_every_secret_from_key_vault() -> None:
    example = json.loads((ARM.parent / "main.parameters.example.json").read_text())
    declared = arm()["parameters"]
    secure = {name for name, spec in declared.items() if spec["type"] == "securestring"}
    for name, value in example["parameters"].items():
        assert name in declared, name
        if name in secure:
            reference = value["reference"]
            assert "/providers/Microsoft.KeyVault/vaults/" in reference["keyVault"]["id"]
            assert reference["secretName"]
        else:
            assert "reference" not in value, name
    assert secure <= set(example["parameters"])
    assert "image" not in example["parameters"]  # the template keeps the deployed image


def test_the_bicepparam_example_uses_get_secret_for_every_secret() -> None:
    text = (ARM.parent / "main.bicepparam.example").read_text()
    assert "using './main.bicep'" in text
    declared = arm()["parameters"]
    for name, spec in declared.items():
        line = re.search(rf"^param {name} = (.+)$", text, re.MULTILINE)
        if spec["type"] == "securestring":
            assert line is not None and line.group(1).startswith("az.getSecret("), name
    assert not re.search(r"^param image =", text, re.MULTILINE)


def test_chatops_deploy_asks_key_vault_for_the_secrets_the_examples_store() -> None:
    # `chatops deploy --key-vault` names a Key Vault secret for each secure value it finds in
    # the running group; the template put each there from a parameter that the examples take
    # from a Key Vault secret. Both must name the same secret, or a deploy would fail (or
    # send another secret) after a template deployment that worked.
    from bot.deploy import key_vault_secret, secret_file_variable

    secure = [n for n, s in arm()["parameters"].items() if s["type"] == "securestring"]
    markers = {name: f"marker-{name}" for name in secure}
    template = deploy(**{**EVERYTHING, **markers})
    came_from: dict[str, str] = {}  # the deploy's variable -> the template parameter
    for container in containers(template).values():
        for var in env(container).values():
            for name, marker in markers.items():
                if var.get("secureValue") == marker:
                    came_from[var["name"]] = name
    for volume in template.resource(GROUPS)["properties"]["volumes"]:
        for file, content in (volume.get("secret") or {}).items():
            (name,) = [
                n for n, m in markers.items() if base64.b64encode(m.encode()).decode() == content
            ]
            came_from[secret_file_variable(volume["name"], file)] = name
    assert set(came_from.values()) == set(secure)
    example = json.loads((ARM.parent / "main.parameters.example.json").read_text())["parameters"]
    bicepparam = (ARM.parent / "main.bicepparam.example").read_text()
    for variable, name in came_from.items():
        stored = example[name]["reference"]["secretName"]
        assert key_vault_secret(variable) == stored, (variable, name)
        assert re.search(rf"^param {name} = az\.getSecret\(.*'{stored}'\)$", bicepparam, re.M)


def test_the_dns_reuse_scopes_are_those_of_the_container_instance_api() -> None:
    """The values as the API version spells them (``Noreuse``, not ``NoReuse``)."""
    models = pytest.importorskip("azure.mgmt.containerinstance.models")
    api = {policy.value for policy in models.DnsNameLabelReusePolicy}
    assert set(arm()["parameters"]["dnsNameLabelScope"]["allowedValues"]) == api
    assert models.IpAddress._attribute_map["auto_generated_domain_name_label_scope"]["key"] == (
        "autoGeneratedDomainNameLabelScope"
    )
