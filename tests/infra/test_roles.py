"""The template's two custom roles allow exactly the ARM operations the code makes.

Which ``Aci`` methods the bot (every module of ``commands/`` and ``bot/`` but the deploy)
and ``chatops deploy`` (``bot/deploy.py``, ``bot/cli/deploy_verbs.py``) call is read from
their source (and followed through ``Aci``'s own
calls); which ARM operation each method makes is observed by running it against a
recording client and reading ``app.azure.operation`` off its span. A new ARM call without
its action in the role (or an action no code needs any more) fails here.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from commands.azure.arm_client import Aci, GroupRef
from telemetry import schema
from tests.infra.arm_eval import Template

ROOT = Path(__file__).resolve().parents[2]
ARM = ROOT / "infra" / "aci" / "main.json"
# ARM checks these linked permissions, which no call of ours names: on the identity when a
# group that uses it is written (chatops deploy PUTs the group), and on the vault when a
# deployment's parameter is a Key Vault reference (chatops deploy --key-vault).
LINKED = {
    "Microsoft.ManagedIdentity/userAssignedIdentities/assign/action",
    "Microsoft.KeyVault/vaults/deploy/action",
}


class _Poller:
    async def result(self) -> Any:
        return SimpleNamespace(provisioning_state="Succeeded")


class _Response:
    def raise_for_status(self) -> None:
        return None

    def json(self) -> Any:
        return {"properties": {"provisioningState": "Succeeded"}}  # a finished deployment


class RecordingClient:
    """Answers every SDK call the way ARM would when it succeeds; records nothing itself."""

    def __init__(self) -> None:
        group = SimpleNamespace(name="web", containers=[])
        self.container_groups = SimpleNamespace(
            get=self._value(group),
            list_by_resource_group=self._pager(group),
            begin_restart=self._value(_Poller()),
            begin_start=self._value(_Poller()),
            begin_create_or_update=self._value(_Poller()),
            stop=self._value(None),
        )
        self.containers = SimpleNamespace(list_logs=self._value(SimpleNamespace(content="")))

    @staticmethod
    def _value(value: Any) -> Any:
        async def call(*_args: Any, **_kwargs: Any) -> Any:
            return value

        return call

    @staticmethod
    def _pager(value: Any) -> Any:
        def call(*_args: Any, **_kwargs: Any) -> Any:
            async def items() -> Any:
                yield value

            return items()

        return call

    async def _send_request(self, *_args: Any, **_kwargs: Any) -> _Response:
        return _Response()


DEPLOY_SIDE = {ROOT / "bot" / "deploy.py", ROOT / "bot" / "cli" / "deploy_verbs.py"}


def bot_side() -> list[Path]:
    """Every module that runs in the bot (cogs, watchers, the client): not the deploy."""
    files = [*(ROOT / "commands").rglob("*.py"), *(ROOT / "bot").rglob("*.py")]
    return [f for f in files if f not in DEPLOY_SIDE and "sandbox" not in f.parts]


def aci_methods_called(paths: list[Path] | set[Path]) -> set[str]:
    """Names of ``Aci`` methods called on an ``aci`` (``aci.get(...)``, ``self.aci.get``),
    also passed uncalled (``aci.start`` handed to a helper)."""
    public = {name for name in vars(Aci) if not name.startswith("_")}
    found = set()
    for path in paths:
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.Attribute) or node.attr not in public:
                continue
            receiver = node.value
            if (isinstance(receiver, ast.Name) and receiver.id == "aci") or (
                isinstance(receiver, ast.Attribute) and receiver.attr == "aci"
            ):
                found.add(node.attr)
    return found


def with_internal_calls(methods: set[str]) -> set[str]:
    """``methods`` and every ``Aci`` method they call on ``self``, transitively."""
    tree = ast.parse((ROOT / "commands" / "azure" / "arm_client.py").read_text())
    (aci,) = [n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "Aci"]
    calls: dict[str, set[str]] = {}
    for fn in aci.body:
        if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
            calls[fn.name] = {
                n.attr
                for n in ast.walk(fn)
                if isinstance(n, ast.Attribute)
                and isinstance(n.value, ast.Name)
                and n.value.id == "self"
                and n.attr in vars(Aci)
                and not n.attr.startswith("_")
            }
    todo, seen = list(methods), set(methods)
    while todo:
        for callee in calls.get(todo.pop(), set()) - seen:
            seen.add(callee)
            todo.append(callee)
    return seen


async def operations_of(method: str, spans: InMemorySpanExporter) -> set[str]:
    """The ARM operations (``app.azure.operation``) that calling ``method`` records."""
    aci = Aci(
        RecordingClient(),
        subscription_id="sub",
        resource_groups=["rg"],
        call_timeout_s=5,
        operation_timeout_s=5,
    )
    ref = GroupRef("rg", "web")
    arguments: dict[str, tuple[Any, ...]] = {
        "find": ("web",),
        "get": (ref,),
        "group_refs": (),
        "list_groups": (),
        "logs": (ref, "web", 10),
        "restart": (ref,),
        "start": (ref,),
        "stop": (ref,),
        "create_or_update": (ref, SimpleNamespace(), 5.0),
        "tag_resource_group": ("rg", "chatops-bot-image", "img"),
        "deploy_template": ("rg", "chatops-deploy-1", {}, {}),
    }
    keywords: dict[str, dict[str, Any]] = {"deploy_template": {"timeout_s": 5, "poll_s": 0.01}}
    if method == "resource_id" or method == "close":
        return set()
    spans.clear()
    await getattr(aci, method)(*arguments[method], **keywords.get(method, {}))
    return {
        str(s.attributes[schema.AZURE_OPERATION])
        for s in spans.get_finished_spans()
        if s.attributes and schema.AZURE_OPERATION in s.attributes
    }


def role_actions(variable: str) -> set[str]:
    template = json.loads(ARM.read_text())
    actions: list[str] = template["variables"][variable]
    assert len(actions) == len(set(actions)), f"{variable} lists an action twice"
    return set(actions)


async def used_operations(paths: list[Path] | set[Path], spans: InMemorySpanExporter) -> set[str]:
    operations: set[str] = set()
    for method in with_internal_calls(aci_methods_called(paths)):
        operations |= await operations_of(method, spans)
    return operations


async def test_every_aci_method_is_known_to_this_test(spans: InMemorySpanExporter) -> None:
    public = {n for n, v in vars(Aci).items() if callable(v) and not n.startswith("_")}
    for method in public:
        await operations_of(method, spans)  # a KeyError names a method to add above


async def test_the_bot_role_allows_exactly_what_aci_commands_call(
    spans: InMemorySpanExporter,
) -> None:
    assert ROOT / "commands" / "azure" / "aci_cog.py" in bot_side()
    used = await used_operations(bot_side(), spans)
    assert used == {
        "Microsoft.ContainerInstance/containerGroups/read",
        "Microsoft.ContainerInstance/containerGroups/containers/logs/read",
        "Microsoft.ContainerInstance/containerGroups/start/action",
        "Microsoft.ContainerInstance/containerGroups/stop/action",
        "Microsoft.ContainerInstance/containerGroups/restart/action",
    }
    assert role_actions("botActions") == used


async def test_the_deployer_role_allows_exactly_what_chatops_deploy_calls(
    spans: InMemorySpanExporter,
) -> None:
    used = await used_operations(DEPLOY_SIDE, spans)
    assert "Microsoft.ContainerInstance/containerGroups/write" in used
    assert role_actions("deployerActions") == used | LINKED


@pytest.mark.parametrize("variable", ["botActions", "deployerActions"])
def test_no_role_holds_a_wildcard_delete_exec_or_role_assignment(variable: str) -> None:
    for action in role_actions(variable):
        assert "*" not in action
        assert not action.endswith("/delete"), action
        assert "exec" not in action and "Authorization" not in action, action
    assert "Microsoft.ContainerInstance/containerGroups/write" not in role_actions("botActions")


def test_roles_are_assignable_only_in_their_resource_group_with_names_unique_per_scope() -> None:
    template = json.loads(ARM.read_text())
    parameters = {
        "image": "i",
        "registryLoginServer": "r",
        "identityName": "id",
        "discordToken": "t",
        "deployerPrincipalId": "pipeline-principal",
    }
    names: set[str] = set()
    for rg in ("rg-a", "rg-b"):
        evaluated = Template(
            template, parameters, resource_group={"id": f"/subscriptions/S/resourceGroups/{rg}"}
        )
        roles = evaluated.resources("Microsoft.Authorization/roleDefinitions")
        assert len(roles) == 2
        for role in roles:
            props = role["properties"]
            assert props["assignableScopes"] == [f"/subscriptions/S/resourceGroups/{rg}"]
            assert rg in role["name"]  # guid(resourceGroup().id, name)
            assert role["name"] in props["roleName"]
            names.add(props["roleName"])
        assignments = evaluated.resources("Microsoft.Authorization/roleAssignments")
        principals = {a["properties"]["principalId"] for a in assignments}
        assert "pipeline-principal" in principals
        assert any("principalId of" in p for p in principals)  # the bot's identity
    assert len(names) == 4  # two roles, two resource groups: four distinct names
