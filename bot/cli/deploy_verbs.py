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
    from bot.deploy import DeployReport, DeployRequest


@dataclass(frozen=True)
class DeployHooks:
    """Test seams: Azure client options, and whether to install our own tracing."""

    azure: AzureOptions | None = None
    install_tracing: bool = True


async def _run(config: Settings, request: DeployRequest, hooks: DeployHooks) -> DeployReport:
    from bot.azure_wiring import AzureNotConfigured, build_aci
    from bot.deploy import DeployFailed, deploy
    from bot.deploy_audit import audited

    try:
        aci = build_aci(config, hooks.azure)
    except AzureNotConfigured as exc:
        raise DeployFailed(str(exc)) from None
    try:
        async with audited(config, request.group, request.image, os.environ) as run:
            return await deploy(aci, request, run.env, click.echo)
    finally:
        await aci.close()


@click.command(name="deploy")
@click.option("--group", required=True, help="Container group (or resource-group/name).")
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
@click.pass_obj
def deploy_command(
    hooks: DeployHooks | None,
    group: str,
    image: str,
    container: str | None,
    timeout_s: float,
    health_path: str,
    no_health_check: bool,
    no_rollback: bool,
) -> None:
    """Put IMAGE into the container group GROUP; wait until it is running and ready.

    If it never gets there, the previous image is put back (unless --no-rollback),
    and the deploy still fails.
    """
    from bot.deploy import DeployFailed, DeployRequest

    hooks = hooks or DeployHooks()
    config = settings()
    request = DeployRequest(
        group=group,
        image=image,
        container=container,
        timeout_s=timeout_s,
        health_path=health_path,
        check_health=not no_health_check,
        poll_s=min(2.0, config.azure_poll_interval_s),
        rollback=not no_rollback,
    )
    provider = None
    if hooks.install_tracing:
        from bot.runner import start_tracing

        provider = start_tracing(config)
    try:
        report = asyncio.run(_run(config, request, hooks))
    except DeployFailed as exc:
        raise Failure(f"deploy failed: {exc}") from None
    finally:
        if provider is not None:
            from telemetry.setup import shutdown

            shutdown(provider)
    click.echo(report.summary())
