"""Wiring for Azure: the Container Instances client and its credential, built from ``Settings``.

One client per process (the bot builds it in ``setup_hook`` and closes it in
``close``; ``chatops deploy`` builds its own), with azure-identity's
``DefaultAzureCredential`` (managed identity in ACI, a service principal through
``AZURE_CLIENT_ID``/``AZURE_TENANT_ID``/``AZURE_CLIENT_SECRET``, the Azure CLI
locally). The Azure packages are imported here, lazily, only when Azure is
configured.

``AzureOptions`` is the test seam: tests inject a credential (a small class with
``get_token``) and transport options (``connection_verify`` naming the fake
ARM's test certificate). Production passes neither, so TLS verification and
azure-core's refusal to send a bearer token over plain http both stay on.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from commands.azure.arm_client import Aci
from telemetry.setup import package_version


@dataclass(frozen=True)
class AzureOptions:
    """What tests inject: a credential, and keyword arguments for azure-core's transport."""

    credential: Any = None
    transport: Mapping[str, Any] = field(default_factory=dict)


class AzureNotConfigured(Exception):
    """``AZURE_SUBSCRIPTION_ID`` or ``AZURE_RESOURCE_GROUP`` is missing."""


def build_aci(settings: Settings, options: AzureOptions | None = None) -> Aci:
    """The ``Aci`` for ``settings``; raises ``AzureNotConfigured`` without a subscription."""
    if not settings.azure_subscription_id:
        raise AzureNotConfigured("AZURE_SUBSCRIPTION_ID is not set")
    if not settings.azure_resource_group:
        raise AzureNotConfigured("AZURE_RESOURCE_GROUP is not set")
    from azure.mgmt.containerinstance.aio import ContainerInstanceManagementClient

    options = options or AzureOptions()
    closers: list[Callable[[], Awaitable[None]]] = []
    credential = options.credential
    if credential is None:
        from azure.identity.aio import DefaultAzureCredential

        identity_options: dict[str, Any] = {}
        if settings.azure_authority_host:
            identity_options["authority"] = settings.azure_authority_host
        credential = DefaultAzureCredential(**identity_options)
        closers.append(credential.close)
    endpoint = settings.azure_arm_endpoint.rstrip("/")
    client = ContainerInstanceManagementClient(
        credential,
        settings.azure_subscription_id,
        base_url=endpoint,
        credential_scopes=[f"{endpoint}/.default"],
        polling_interval=settings.azure_poll_interval_s,
        retry_total=settings.azure_retry_total,
        user_agent=f"chatops-bot/{package_version()}",
        **dict(options.transport),
    )
    closers.insert(0, client.close)
    return Aci(
        client,
        subscription_id=settings.azure_subscription_id,
        resource_groups=settings.azure_resource_group,
        call_timeout_s=settings.azure_call_timeout_s,
        operation_timeout_s=settings.azure_operation_timeout_s,
        closers=closers,
    )
