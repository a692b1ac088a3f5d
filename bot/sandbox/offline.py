"""The console's stand-ins for every external service it has no configuration for.

``chatops console`` runs the real bot; without these its cat fact, Scryfall,
HTTP-backed and Azure commands would call the internet (or answer "not
configured"), and ``!builds`` would have nothing to show. ``offline_services``
starts a local fake (``bot/sandbox/fakes``, the ones the tests use) for each
service whose setting was left at its default, and returns the settings pointed
at them. A setting the operator gave is used as
given: no fake replaces it. Every fake binds 127.0.0.1 on a free port and stops
when the context exits.
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.resources import as_file, files
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import SecretStr

from bot.azure_wiring import AzureOptions
from bot.config import Settings

if TYPE_CHECKING:
    from bot.sandbox.fakes.arm import FakeArm

SANDBOX_RESOURCE_GROUP = "chatops-sandbox"
SANDBOX_BUILDKITE_ORG = "chatops-sandbox"
# Long enough to see "starting..." in a trace, short enough not to wait on it.
ARM_OPERATION_S = 1.0
ARM_POLL_INTERVAL_S = 0.25
HONEYCOMB_KEYS = ("honeycomb_marker_key", "honeycomb_api_key", "honeycomb_config_key")

# The relationships example of commands.example.toml, pointed at the local endpoint
# (no function key: the fake needs none).
COMMANDS_TOML = """\
# Written by chatops console: the relationships example of commands.example.toml,
# answered by a local fake of the operator's endpoint.
[[command]]
name = "relationships"
description = "How two people in this server know each other, e.g. `relationships @someone`."
url = "{base}/api/relationships"
method = "GET"
query = {{ user = "{{author_id}}", target = "{{arg1}}", guild = "{{guild_id}}" }}
response = {{ type = "json", field = "result.summary" }}
"""


# The example flags file ships beside the fakes (package data: the wheel has it); a copy
# of the checkout's flags.json, kept equal by tests/unit/test_console_flags.py.
EXAMPLE_FLAGS = files("bot.sandbox.fakes") / "flags.json"


@contextmanager
def console_flags(settings: Settings) -> Iterator[tuple[Settings, str | None]]:
    """``settings`` with the flags file the console evaluates, and a banner line if it changed.

    The console is often started outside the checkout: with ``FLAGS_FILE`` unset and
    no ``./flags.json`` every flag would be ``off (error)``, so the example file
    shipped with the package is used instead (its rules let the default persona in).
    A configured ``FLAGS_FILE`` is used as given, even when it does not exist (the
    console then shows why, as the bot would); so is a flagd server
    (``FLAGS_PROVIDER`` other than ``file``).
    """
    own = (
        settings.flags_provider != "file"
        or "flags_file" in settings.model_fields_set
        or settings.flags_file.exists()
    )
    if own:
        yield settings, None
        return
    with as_file(EXAMPLE_FLAGS) as path:
        line = f"flags: the example file shipped with chatops ({path}): FLAGS_FILE is unset"
        yield settings.model_copy(update={"flags_file": path}), line


@dataclass
class OfflineServices:
    """The settings the bot runs with, what Azure needs injected, and what was faked."""

    settings: Settings
    azure: AzureOptions | None = None
    # (service, where it answers), one per fake started
    started: list[tuple[str, str]] = field(default_factory=list)

    def describe(self) -> list[str]:
        """The console's banner: one line per fake (a URL is never wrapped)."""
        if not self.started:
            return ["fakes: none (every external service is configured)"]
        return [f"fake {name}: {url}" for name, url in self.started]


@asynccontextmanager
async def offline_services(settings: Settings, workdir: Path) -> AsyncIterator[OfflineServices]:
    """Start the fakes ``settings`` leave unconfigured; yield the settings pointed at them.

    ``workdir`` holds what the fakes need on disk (the ARM certificate, the
    commands file) and must outlive the context.
    """
    from bot.sandbox.fakes.arm import FakeArm, StaticCredential
    from bot.sandbox.fakes.buildkite_api import FakeBuildkite, sample_builds
    from bot.sandbox.fakes.catfact import FakeCatFacts
    from bot.sandbox.fakes.function import FakeFunction
    from bot.sandbox.fakes.honeycomb_api import FakeHoneycomb
    from bot.sandbox.fakes.scryfall import FakeScryfall
    from bot.sandbox.fakes.tls import make_certificate

    given = settings.model_fields_set
    update: dict[str, object] = {}
    offline = OfflineServices(settings)
    async with AsyncExitStack() as stack:
        if "catfact_api_url" not in given:
            catfact = await stack.enter_async_context(FakeCatFacts())
            update["catfact_api_url"] = catfact.url
            offline.started.append(("cat-fact", catfact.url))
        if "scryfall_api_url" not in given:
            scryfall = await stack.enter_async_context(FakeScryfall())
            update["scryfall_api_url"] = scryfall.url
            offline.started.append(("scryfall", scryfall.url))
        if not settings.commands_file.exists():
            function = await stack.enter_async_context(FakeFunction())
            path = workdir / "commands.toml"
            path.write_text(COMMANDS_TOML.format(base=function.url), encoding="utf-8")
            update["commands_file"] = path
            offline.started.append(("relationships endpoint", function.url))
        if not settings.azure_subscription_id:
            certificate = make_certificate(workdir / "tls")
            arm = await stack.enter_async_context(FakeArm(certificate, operation_s=ARM_OPERATION_S))
            add_container_groups(arm)
            update |= {
                "azure_subscription_id": arm.subscription,
                "azure_resource_group": [SANDBOX_RESOURCE_GROUP],
                "azure_arm_endpoint": arm.url,
                "azure_poll_interval_s": ARM_POLL_INTERVAL_S,
            }
            # The bot's own client, trusting only this certificate; a fixed token.
            offline.azure = AzureOptions(
                credential=StaticCredential(arm.token),
                transport={"connection_verify": str(certificate.cert_path)},
            )
            offline.started.append(("azure resource manager", arm.url))
        buildkite_given = "buildkite_api_url" in given or bool(
            settings.buildkite_api_token or settings.buildkite_org
        )
        if not buildkite_given:
            # ``!builds`` asks it (commands/builds.py); no poller runs in the console.
            buildkite = FakeBuildkite(sample_builds(datetime.now(UTC)), token=secrets.token_hex(16))
            await stack.enter_async_context(buildkite)
            update |= {
                "buildkite_api_url": buildkite.url,
                "buildkite_api_token": SecretStr(buildkite.token),
                "buildkite_org": SANDBOX_BUILDKITE_ORG,
            }
            offline.started.append(("buildkite", buildkite.url))
        honeycomb_given = "honeycomb_api_url" in given or any(
            getattr(settings, key) is not None for key in HONEYCOMB_KEYS
        )
        if not honeycomb_given:
            key = secrets.token_hex(16)
            honeycomb = await stack.enter_async_context(FakeHoneycomb(key=key))
            update["honeycomb_api_url"] = honeycomb.url
            update["honeycomb_marker_key"] = SecretStr(key)
            offline.started.append(("honeycomb markers", honeycomb.url))
        offline.settings = settings.model_copy(update=update)
        yield offline


def add_container_groups(arm: FakeArm) -> None:
    """Three container groups: two running (one with a sidecar), one stopped."""
    rg = SANDBOX_RESOURCE_GROUP
    arm.add_group(
        rg, "web", image="chatops.azurecr.io/web:1.2.0", fqdn="web.westeurope.azurecontainer.io"
    )
    arm.add_group(rg, "worker", containers=["worker", "sidecar"], restart_count=2)
    arm.add_group(rg, "nightly", image="chatops.azurecr.io/nightly:0.9.1", ip=None)
    arm.set_state(rg, "nightly", "Stopped")
