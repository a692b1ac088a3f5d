"""``chatops doctor`` against local fakes: Discord, Honeycomb, an OTLP receiver, ARM permissions.

Each failing check is provoked for real (a rejected token, the intent off, a key
of another environment, a collector that is down, a role without restart...)
and must fail with its fix, and make the exit code 1.
"""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from click.testing import CliRunner, Result

from bot.azure_wiring import AzureOptions
from bot.cli.doctor_verbs import DoctorHooks
from bot.cli.main import cli
from bot.doctor import allowed
from bot.sandbox import FakeDiscord
from tests.fakes.arm import StaticCredential
from tests.fakes.arm_permissions import CONTRIBUTOR, READER, FakeArmPermissions
from tests.fakes.honeycomb_api import FakeHoneycomb
from tests.fakes.otlp import OtlpReceiver
from tests.fakes.tls import SelfSignedCertificate, make_certificate
from tests.helpers.chatops_process import closed_port
from tests.helpers.commands_toml import COMMANDS
from tests.helpers.flag_rules import IS_ADMIN, boolean_flag, write_flags

RG = "chatops-rg"
HONEYCOMB_KEY = "hc-ingest-key-secret"


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> SelfSignedCertificate:
    return make_certificate(tmp_path_factory.mktemp("tls"))


@dataclass
class World:
    fake: FakeDiscord
    honeycomb: FakeHoneycomb
    otlp: OtlpReceiver
    arm: FakeArmPermissions
    env: dict[str, str | None]
    credential: StaticCredential = field(default_factory=StaticCredential)
    certificate: SelfSignedCertificate | None = None

    async def doctor(self, *args: str) -> Result:
        hooks = DoctorHooks(
            AzureOptions(
                credential=self.credential,
                transport={"connection_verify": str(self.certificate.cert_path)}
                if self.certificate
                else {},
            )
        )
        # The CLI runs its own event loop; the fakes serve from this one meanwhile.
        return await asyncio.to_thread(
            CliRunner().invoke, cli, ["doctor", *args], env=self.env, obj=hooks
        )

    async def checks(self) -> tuple[int, dict[str, dict[str, str]]]:
        result = await self.doctor("--format", "json")
        report = json.loads(result.stdout)
        assert report["ok"] == (result.exit_code == 0)
        return result.exit_code, {check["name"]: check for check in report["checks"]}


@pytest.fixture
async def world(
    tmp_path: Path, certificate: SelfSignedCertificate, fake: FakeDiscord
) -> AsyncIterator[World]:
    honeycomb = FakeHoneycomb(key=HONEYCOMB_KEY)
    runner = web.AppRunner(honeycomb.app())
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    honeycomb_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    write_flags(tmp_path / "flags.json", {"aci-operator": boolean_flag(IS_ADMIN)})
    (tmp_path / "commands.toml").write_text(COMMANDS.format(base="http://127.0.0.1:9"))
    async with (
        OtlpReceiver() as otlp,
        FakeArmPermissions(certificate, grants={RG: [CONTRIBUTOR]}) as arm,
    ):
        env: dict[str, str | None] = {
            "DISCORD_TOKEN": "sandbox-token",
            "DISCORD_API_BASE": fake.api_base,
            "HONEYCOMB_API_KEY": HONEYCOMB_KEY,
            "HONEYCOMB_API_URL": honeycomb_url,
            "HONEYCOMB_ENVIRONMENT": None,
            "HONEYCOMB_TEAM": None,
            "HONEYCOMB_MARKER_KEY": None,
            "OTEL_EXPORTER_OTLP_ENDPOINT": otlp.endpoint,
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": None,
            "OTEL_TRACES_EXPORTER": None,
            "AZURE_SUBSCRIPTION_ID": arm.subscription,
            "AZURE_RESOURCE_GROUP": RG,
            "AZURE_ARM_ENDPOINT": arm.url,
            "FLAGS_FILE": str(tmp_path / "flags.json"),
            "FLAGS_PROVIDER": None,
            "FLAGD_HOST": None,
            "FLAGD_PORT": None,
            "OTEL_EXPORTER_OTLP_CERTIFICATE": None,
            "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE": None,
            "COMMANDS_FILE": str(tmp_path / "commands.toml"),
            "HEALTH_PORT": str(closed_port()),
            "WEBHOOK_PORT": None,
            "SPAN_STORE": str(tmp_path / "spans.db"),
        }
        yield World(fake, honeycomb, otlp, arm, env, certificate=certificate)
    await runner.cleanup()


async def test_a_working_setup_passes_every_check(world: World) -> None:
    code, checks = await world.checks()
    assert code == 0, checks
    assert {name: check["status"] for name, check in checks.items()} == {
        "discord token": "ok",
        "message content intent": "ok",
        "honeycomb api key": "ok",
        "otlp endpoint": "ok",
        "azure credential": "ok",
        **{f"azure {RG}: aci {action}": "ok" for action in ACTIONS},
        "flags file": "ok",
        "commands file": "ok",
        "span store writer": "ok",
        "port HEALTH_PORT": "ok",
    }
    assert "team chatops-team, environment production" in checks["honeycomb api key"]["detail"]
    assert world.otlp.requests == 1  # one empty export, nothing else
    assert world.arm.paths == [
        f"/subscriptions/{world.arm.subscription}/resourceGroups/{RG}"
        "/providers/Microsoft.Authorization/permissions"
    ]


ACTIONS = ("list, status", "logs", "start", "stop", "restart", "deploy")


def _env(**values: str | None) -> Callable[[World], None]:
    def apply(world: World) -> None:
        world.env.update(values)

    return apply


def _intent_off(world: World) -> None:
    world.fake.rest.application_flags = 0


def _otlp_refuses(world: World) -> None:
    world.otlp.status = 401


def _no_events(world: World) -> None:
    world.honeycomb.access["events"] = False


def _no_credential(world: World) -> None:
    world.credential = StaticCredential(unavailable=True)


def _reader_role(world: World) -> None:
    world.arm.grants[RG] = [READER]


def _broken_flags(world: World) -> None:
    Path(str(world.env["FLAGS_FILE"])).write_text('{"flags": {"x": {"state": "ENABLED"}}}')


def _broken_commands(world: World) -> None:
    Path(str(world.env["COMMANDS_FILE"])).write_text('[[command]]\nname = "x"\n')


FAILURES: list[tuple[str, Callable[[World], None], str, str]] = [
    ("rejected token", _env(DISCORD_TOKEN="bad-token"), "discord token", "Reset Token"),
    ("no token", _env(DISCORD_TOKEN=""), "discord token", "set DISCORD_TOKEN"),
    ("intent off", _intent_off, "message content intent", "Message Content Intent: on"),
    ("wrong honeycomb key", _env(HONEYCOMB_API_KEY="nope"), "honeycomb api key", "API Keys"),
    (
        "key of another environment",
        _env(HONEYCOMB_ENVIRONMENT="staging"),
        "honeycomb api key",
        "HONEYCOMB_ENVIRONMENT=production",
    ),
    ("key of another team", _env(HONEYCOMB_TEAM="others"), "honeycomb api key", "chatops-team"),
    ("key cannot send events", _no_events, "honeycomb api key", "ingest permission"),
    (
        "collector down",
        _env(OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port()}"),
        "otlp endpoint",
        "start the collector",
    ),
    ("collector refuses headers", _otlp_refuses, "otlp endpoint", "OTEL_EXPORTER_OTLP_HEADERS"),
    ("no azure credential", _no_credential, "azure credential", "az login"),
    ("role cannot restart", _reader_role, f"azure {RG}: aci restart", "Contributor"),
    ("unknown group", _env(AZURE_RESOURCE_GROUP="elsewhere"), "azure elsewhere", "az role"),
    ("broken flags file", _broken_flags, "flags file", "chatops flags check"),
    ("broken commands file", _broken_commands, "commands file", "docs/commands.md"),
]


@pytest.mark.parametrize(
    ("mutate", "name", "fix"), [case[1:] for case in FAILURES], ids=[case[0] for case in FAILURES]
)
async def test_each_broken_thing_fails_its_check_with_a_fix_and_exit_1(
    world: World, mutate: Callable[[World], None], name: str, fix: str
) -> None:
    mutate(world)
    code, checks = await world.checks()
    assert code == 1
    assert checks[name]["status"] == "fail", checks[name]
    assert fix in checks[name]["fix"], checks[name]
    failed = [n for n, check in checks.items() if check["status"] == "fail"]
    assert name in failed


# -- flags, the marker key and the collector's certificate: each failing for real -----


async def test_a_flagd_server_that_does_not_answer_fails_with_the_fix(world: World) -> None:
    world.env |= {"FLAGS_PROVIDER": "rpc", "FLAGD_HOST": "127.0.0.1"}
    world.env["FLAGD_PORT"] = str(closed_port())
    code, checks = await world.checks()
    assert code == 1
    flags = checks["flags"]
    assert flags["status"] == "fail", flags
    assert f"flagd at 127.0.0.1:{world.env['FLAGD_PORT']}: no answer" in flags["detail"]
    assert "start flagd" in flags["fix"]


async def test_a_flagd_server_that_answers_passes(world: World) -> None:
    with socket.socket() as flagd:
        flagd.bind(("127.0.0.1", 0))
        flagd.listen()
        world.env |= {"FLAGS_PROVIDER": "in-process", "FLAGD_HOST": "127.0.0.1"}
        world.env["FLAGD_PORT"] = str(flagd.getsockname()[1])
        _, checks = await world.checks()
    assert checks["flags"]["status"] == "ok", checks["flags"]


async def test_a_missing_flags_file_warns_that_every_permission_flag_denies(
    world: World, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-flags.json"
    world.env["FLAGS_FILE"] = str(missing)
    code, checks = await world.checks()
    flags = checks["flags file"]
    # A warning, not a failure: the bot runs, with every flag at its code default.
    assert (code, flags["status"]) == (0, "warn"), flags
    assert str(missing) in flags["detail"]
    assert f"create {missing}" in flags["fix"] and "FLAGS_FILE" in flags["fix"]


async def test_a_rejected_marker_key_fails_apart_from_the_ingest_key(world: World) -> None:
    world.env["HONEYCOMB_MARKER_KEY"] = "not-the-marker-key"
    code, checks = await world.checks()
    assert code == 1
    marker = checks["honeycomb marker key"]
    assert marker["status"] == "fail", marker
    assert "Honeycomb rejected HONEYCOMB_MARKER_KEY (401)" in marker["detail"]
    assert "set HONEYCOMB_MARKER_KEY" in marker["fix"]
    assert checks["honeycomb api key"]["status"] == "ok"


async def test_a_marker_key_without_the_markers_permission_fails(world: World) -> None:
    world.env["HONEYCOMB_MARKER_KEY"] = HONEYCOMB_KEY
    world.honeycomb.access["markers"] = False
    code, checks = await world.checks()
    assert code == 1
    marker = checks["honeycomb marker key"]
    assert marker["status"] == "fail", marker
    assert "the key may not send markers" in marker["detail"]
    assert "markers permission" in marker["fix"]


async def test_a_missing_otlp_certificate_file_fails_with_the_setting_to_fix(
    world: World, tmp_path: Path
) -> None:
    missing = tmp_path / "no-such-ca.pem"
    world.env["OTEL_EXPORTER_OTLP_CERTIFICATE"] = str(missing)
    code, checks = await world.checks()
    assert code == 1
    otlp = checks["otlp endpoint"]
    assert otlp["status"] == "fail", otlp
    assert str(missing) in otlp["detail"]
    assert "OTEL_EXPORTER_OTLP_CERTIFICATE" in otlp["fix"]
    assert world.otlp.requests == 0


async def test_an_otlp_certificate_that_did_not_sign_the_collector_s_fails(
    world: World, tmp_path: Path
) -> None:
    collector = make_certificate(tmp_path / "collector")
    other = make_certificate(tmp_path / "other")
    async with OtlpReceiver(ssl_context=collector.server_context()) as tls:
        world.env["OTEL_EXPORTER_OTLP_ENDPOINT"] = tls.endpoint
        world.env["OTEL_EXPORTER_OTLP_CERTIFICATE"] = str(other.cert_path)
        code, checks = await world.checks()
        otlp = checks["otlp endpoint"]
        assert code == 1 and otlp["status"] == "fail", otlp
        assert "certificate" in otlp["detail"]
        assert "OTEL_EXPORTER_OTLP_CERTIFICATE" in otlp["fix"]
        # The right certificate: the same collector passes.
        world.env["OTEL_EXPORTER_OTLP_CERTIFICATE"] = str(collector.cert_path)
        _, checks = await world.checks()
        assert checks["otlp endpoint"]["status"] == "ok", checks["otlp endpoint"]


async def test_a_reader_role_allows_the_reads_only(world: World) -> None:
    _reader_role(world)
    _, checks = await world.checks()
    statuses = {action: checks[f"azure {RG}: aci {action}"]["status"] for action in ACTIONS}
    assert statuses == {
        "list, status": "ok",
        "logs": "ok",
        "start": "fail",
        "stop": "fail",
        "restart": "fail",
        "deploy": "fail",
    }


async def test_a_port_in_use_fails(world: World) -> None:
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", 0))
        holder.listen()
        world.env["HEALTH_PORT"] = str(holder.getsockname()[1])
        code, checks = await world.checks()
    assert code == 1
    assert checks["port HEALTH_PORT"]["status"] == "fail"
    assert "in use" in checks["port HEALTH_PORT"]["detail"]


async def test_unconfigured_services_are_skipped_not_failed(world: World) -> None:
    for name in ("HONEYCOMB_API_KEY", "OTEL_EXPORTER_OTLP_ENDPOINT", "AZURE_SUBSCRIPTION_ID"):
        world.env[name] = None
    world.env["AZURE_RESOURCE_GROUP"] = None
    world.env["SPAN_STORE"] = "off"
    code, checks = await world.checks()
    assert code == 0
    for name in ("honeycomb key", "otlp endpoint", "azure", "span store writer"):
        assert checks[name]["status"] == "skip", name


async def test_a_store_writing_without_the_batch_writer_warns_why(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from telemetry import store_sqlite

    monkeypatch.setattr(store_sqlite, "UNAVAILABLE", "_sqlite3 is built into this Python")
    code, checks = await world.checks()
    assert code == 0  # a warning: the store works, only slower
    writer = checks["span store writer"]
    assert writer["status"] == "warn"
    assert "executemany" in writer["detail"] and "in Python" in writer["detail"]
    assert writer["detail"].endswith(": _sqlite3 is built into this Python")
    assert "CPython 3.11 to 3.13" in writer["fix"]


async def test_the_table_names_each_failure_and_its_fix_and_prints_no_secret(
    world: World,
) -> None:
    world.env["HONEYCOMB_ENVIRONMENT"] = "staging"
    world.fake.rest.application_flags = 0
    result = await world.doctor()
    assert result.exit_code == 1
    out = result.stdout
    assert "message content intent" in out and "Privileged Gateway Intents" in out
    assert "HONEYCOMB_ENVIRONMENT=production" in out
    # Piped: rows are not folded at 80 columns.
    assert max(len(line) for line in out.splitlines()) > 100
    for secret in ("sandbox-token", HONEYCOMB_KEY, "fake-arm-token"):
        assert secret not in out


async def test_secrets_go_only_to_their_own_service(world: World) -> None:
    await world.checks()
    to_discord = [r for r in world.fake.requests if r.path in ("/users/@me", "/applications/@me")]
    assert {r.headers.get("Authorization") for r in to_discord} == {"Bot sandbox-token"}
    assert all("Bearer" not in str(r.headers) for r in world.fake.requests)
    assert all(HONEYCOMB_KEY not in str(r.headers) for r in world.fake.requests)
    (auth,) = world.honeycomb.calls("GET", "/1/auth")
    assert "Authorization" not in auth.headers


@pytest.mark.parametrize(
    ("grants", "operation", "expected"),
    [
        ([{"actions": ["*"], "notActions": []}], "Microsoft.ContainerInstance/x/read", True),
        ([{"actions": ["*/read"]}], "Microsoft.ContainerInstance/containerGroups/read", True),
        ([{"actions": ["*/read"]}], "Microsoft.ContainerInstance/containerGroups/write", False),
        (
            [{"actions": ["microsoft.containerinstance/containerGroups/*"]}],
            "Microsoft.ContainerInstance/containerGroups/restart/action",
            True,
        ),
        (
            [{"actions": ["*"], "notActions": ["Microsoft.ContainerInstance/*"]}],
            "Microsoft.ContainerInstance/containerGroups/read",
            False,
        ),
        (
            [{"actions": ["*"], "notActions": ["Microsoft.ContainerInstance/*"]}, READER],
            "Microsoft.ContainerInstance/containerGroups/read",
            True,
        ),
    ],
)
def test_role_grants_match_as_arm_does(
    grants: list[dict[str, Any]], operation: str, expected: bool
) -> None:
    assert allowed(grants, operation) is expected
