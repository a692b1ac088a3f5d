"""``chatops deploy``: update the container group's image and wait until it runs and is ready.

Every failure is one line on stderr and exit code 2. The deploy is a span; run
it under ``chatops ci step deploy -- chatops deploy ...`` and it joins the
pipeline's trace through ``TRACEPARENT``. Tests pass ``DeployHooks`` as click's
``obj`` (a credential and the fake ARM's certificate); production passes none.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING

import click

from bot.cli.exits import Failure, settings
from bot.config import Settings

if TYPE_CHECKING:
    # Imported when the verb runs: discord and Azure would slow every ``chatops`` call.
    from bot.azure_wiring import AzureOptions
    from bot.cli.deploy_progress import DeployProgress
    from bot.deploy import DeployReport, DeployRequest


@dataclass(frozen=True)
class DeployHooks:
    """Test seams: Azure client options, and whether to install our own tracing."""

    azure: AzureOptions | None = None
    install_tracing: bool = True


async def _run(
    config: Settings, request: DeployRequest, hooks: DeployHooks, progress: DeployProgress
) -> DeployReport:
    from bot.azure_wiring import AzureNotConfigured, build_aci
    from bot.deploy import DeployFailed, deploy
    from bot.deploy_audit import audited

    try:
        aci = build_aci(config, hooks.azure)
    except AzureNotConfigured as exc:
        raise DeployFailed(str(exc)) from None
    try:
        async with audited(config, request.group, request.image, os.environ) as run:
            return await deploy(aci, request, run.env, progress.line, on_phase=progress.phase)
    finally:
        await aci.close()


def _target(
    config: Settings,
    group: str | None,
    name: str | None,
    resource_group: str | None,
    subscription: str | None,
) -> tuple[Settings, str]:
    """``--group [RG/]NAME``, or az's ``-g RG -n NAME [--subscription ID]``: settings and group."""
    if (group is None) == (name is None):
        raise Failure("give the container group: --group [RG/]NAME or -n NAME [-g RG]")
    if group is not None and resource_group is not None:
        raise Failure("-g/--resource-group goes with -n/--name, not --group RG/NAME")
    update: dict[str, object] = {}
    if subscription:
        update["azure_subscription_id"] = subscription
    target = group or str(name)
    if resource_group:
        target = f"{resource_group}/{name}"
        if not config.azure_resource_group:
            update["azure_resource_group"] = [resource_group]
    return (config.model_copy(update=update) if update else config), target


@click.command(name="deploy")
@click.option("--group", default=None, help="Container group (or resource-group/name).")
@click.option("-n", "--name", default=None, help="Container group name (as az names it).")
@click.option(
    "-g",
    "--resource-group",
    default=None,
    help="Its resource group (default: AZURE_RESOURCE_GROUP, searched in order).",
)
@click.option(
    "--subscription", default=None, help="Subscription id (default: AZURE_SUBSCRIPTION_ID)."
)
@click.option(
    "--image", required=True, help="The new image, e.g. myacr.azurecr.io/chatops-bot:1.2.3"
)
@click.option("--container", default=None, help="Which container (default: the only one).")
@click.option(
    "--timeout",
    "timeout_s",
    default=300.0,
    show_default=True,
    type=click.FloatRange(1, 3600),
    help="Seconds for the whole deploy.",
)
@click.option("--health-path", default="/readyz", show_default=True)
@click.option("--no-health-check", is_flag=True, help="Do not poll the health URL.")
@click.option(
    "--no-rollback",
    is_flag=True,
    help="Keep the new image when it never gets healthy (default: put the previous back).",
)
@click.option(
    "--key-vault",
    "key_vault",
    default=None,
    metavar="VAULT_ID",
    help="Resource id of the Key Vault the secure values come from: ARM reads them during "
    "the deployment, so they need not be in this environment (docs/azure.md).",
)
@click.pass_obj
def deploy_command(
    hooks: DeployHooks | None,
    group: str | None,
    name: str | None,
    resource_group: str | None,
    subscription: str | None,
    image: str,
    container: str | None,
    timeout_s: float,
    health_path: str,
    no_health_check: bool,
    no_rollback: bool,
    key_vault: str | None,
) -> None:
    """Put IMAGE into the container group (--group, or -g RG -n NAME); wait until it is
    running and ready.

    If it never gets there, the previous image is put back (unless --no-rollback),
    and the deploy still fails. In a terminal the running phase is a live status line.
    With --key-vault the group's secrets come from the vault, read by ARM itself.
    """
    from bot.cli import deploy_progress
    from bot.deploy import KEY_VAULT_ID, DeployFailed, DeployRequest

    if key_vault is not None and not KEY_VAULT_ID.match(key_vault):
        raise Failure(
            "--key-vault takes the vault's resource id: /subscriptions/SUB/resourceGroups/RG"
            "/providers/Microsoft.KeyVault/vaults/NAME (az keyvault show --query id)"
        )
    hooks = hooks or DeployHooks()
    config, target = _target(settings(), group, name, resource_group, subscription)
    request = DeployRequest(
        group=target,
        image=image,
        container=container,
        timeout_s=timeout_s,
        health_path=health_path,
        check_health=not no_health_check,
        poll_s=min(2.0, config.azure_poll_interval_s),
        rollback=not no_rollback,
        key_vault=key_vault,
    )
    provider = None
    if hooks.install_tracing:
        from bot.runner import start_tracing

        provider = start_tracing(config)
    progress = deploy_progress.choose()
    try:
        report = asyncio.run(_run(config, request, hooks, progress))
    except DeployFailed as exc:
        raise Failure(f"deploy failed: {exc}") from None
    finally:
        progress.close()
        if provider is not None:
            from telemetry.setup import shutdown

            shutdown(provider)
    click.echo(report.summary())
