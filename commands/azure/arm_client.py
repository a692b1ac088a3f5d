"""The one way the bot calls Azure Resource Manager for Container Instances.

Mirrors ``commands/toolkit/api_client.py``: every ARM call is a named span
(``azure.containerinstance.restart``) carrying ``app.azure.operation`` (the ARM
action a role must allow, so a 403 in a trace says which permission is missing)
and ``app.azure.resource_id``; the SDK's HTTP requests are its children through
the aiohttp client instrumentation, polls of a long-running operation included.
Each call has a bounded wait, and any failure becomes an ``AzureError`` whose
message is one sentence safe to show (never a token or a credential).

No Azure package is imported at module level: the client is built in
``bot/azure_wiring.py`` only when Azure is configured, so start-up stays fast.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from opentelemetry.trace import Span, Status, StatusCode
from opentelemetry.util.types import AttributeValue

from commands.toolkit.failures import UserFacingError
from telemetry import schema
from telemetry.schema import Outcome
from telemetry.tracer import module_tracer

tracer = module_tracer(__name__)
T = TypeVar("T")

PROVIDER = "Microsoft.ContainerInstance"
GROUPS = f"{PROVIDER}/containerGroups"
TAGS = "Microsoft.Resources/tags"
TAGS_API_VERSION = "2021-04-01"
DEPLOYMENTS = "Microsoft.Resources/deployments"
DEPLOYMENTS_API_VERSION = "2024-03-01"
GROUP_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")
RG_NAME = re.compile(r"^[-\w.()]{1,90}$")
ROLE_HINT = (
    "give it the template's `chatops bot` role (`chatops deployer` to deploy), "
    "see docs/azure.md, or Contributor on the resource group"
)
NO_CREDENTIALS = (
    "No Azure credentials: set up a managed identity for the bot, or AZURE_CLIENT_ID, "
    "AZURE_TENANT_ID and AZURE_CLIENT_SECRET for a service principal (or `az login` locally)."
)
LIST_CONCURRENCY = 4


class AzureError(UserFacingError):
    """An ARM call failed; ``code`` is ARM's error code when it sent one."""

    def __init__(self, message: str, outcome: Outcome = Outcome.ERROR, code: str = "") -> None:
        super().__init__(message, outcome)
        self.code = code


class Refused(AzureError):
    """ARM refused the request itself (4xx before any change): nothing was changed."""


@dataclass(frozen=True)
class GroupRef:
    """A container group: its resource group and name."""

    resource_group: str
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Found:
    """A container group as read by GET (``group`` is the SDK's ``ContainerGroup``)."""

    ref: GroupRef
    group: Any


def retry_after_s(exc: BaseException) -> float | None:
    """The ``Retry-After`` of the response that ended a throttled call, in seconds."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    value = headers.get("Retry-After") or headers.get("retry-after")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def explain(exc: BaseException, action: str, ref: GroupRef | None) -> AzureError:
    """One sentence for what went wrong, with the outcome it means (user's or ours)."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
    )

    if isinstance(exc, AzureError):
        return exc
    where = f" in resource group `{ref.resource_group}`" if ref else ""
    if isinstance(exc, ClientAuthenticationError) and exc.response is None:
        return AzureError(NO_CREDENTIALS, code="CredentialUnavailable")
    if isinstance(exc, HttpResponseError):
        status = exc.status_code or 0
        code = (exc.error.code if exc.error is not None else None) or ""
        if status == 404 and code == "ContainerNotFound":
            return AzureError(_arm_message(exc), Outcome.BAD_INPUT, code)
        if status == 404:
            what = f"`{ref.name}`" if ref else "that container group"
            return AzureError(f"No container group {what}{where}.", Outcome.BAD_INPUT, code)
        if status == 401:
            return AzureError("Azure refused the bot's credentials (401).", code=code)
        if status == 403:
            return AzureError(
                f"The bot's Azure identity may not do `{action}`{where}: {ROLE_HINT}.", code=code
            )
        if status == 429:
            wait = retry_after_s(exc)
            when = f"in {math.ceil(wait)} s" if wait is not None else "in a minute"
            return AzureError(f"Azure is throttling; try again {when}.", code=code)
        if status < 400:
            # A long-running operation that ARM reported as Failed.
            reported = code or "a failure"
            return AzureError(f"Azure reported {reported}: {_arm_message(exc)}", code=code)
        return AzureError(f"Azure answered {status} {code}: {_arm_message(exc)}", code=code)
    if isinstance(exc, ServiceRequestError):
        return AzureError("I couldn't reach Azure Resource Manager.", code="Unreachable")
    raise exc


def _arm_message(exc: Any) -> str:
    error = getattr(exc, "error", None)
    text = (getattr(error, "message", None) or str(exc)).strip()
    return schema.truncate(text.splitlines()[0] if text else type(exc).__name__, 300)


def parse_ref(text: str, resource_groups: Sequence[str]) -> list[GroupRef]:
    """``name`` or ``resource-group/name``: the candidates to look in, in order."""
    rg, sep, name = text.strip().rpartition("/")
    name = name.lower()
    if not GROUP_NAME.match(name):
        raise AzureError(
            f"`{schema.truncate(text, 80)}` is not a container group name "
            "(lowercase letters, digits and hyphens).",
            Outcome.BAD_INPUT,
        )
    if sep:
        if not RG_NAME.match(rg):
            raise AzureError("That is not a resource group name.", Outcome.BAD_INPUT)
        return [GroupRef(rg, name)]
    return [GroupRef(group, name) for group in resource_groups]


class Aci:
    """Container Instances calls for the bot and ``chatops deploy``; one per process."""

    def __init__(
        self,
        client: Any,
        *,
        subscription_id: str,
        resource_groups: Sequence[str],
        call_timeout_s: float,
        operation_timeout_s: float,
        closers: Sequence[Callable[[], Awaitable[None]]] = (),
    ) -> None:
        self.client = client
        self.subscription_id = subscription_id
        self.resource_groups = list(resource_groups)
        self.call_timeout_s = call_timeout_s
        self.operation_timeout_s = operation_timeout_s
        self._closers = list(closers)

    async def close(self) -> None:
        for close in self._closers:
            await close()

    def resource_id(self, ref: GroupRef) -> str:
        return (
            f"/subscriptions/{self.subscription_id}/resourceGroups/{ref.resource_group}"
            f"/providers/{GROUPS}/{ref.name}"
        )

    async def _call(
        self,
        name: str,
        action: str,
        ref: GroupRef | None,
        call: Callable[[], Awaitable[T]],
        *,
        timeout_s: float | None = None,
        resource_id: str | None = None,
    ) -> T:
        """``call`` under the span ``azure.containerinstance.<name>``, within ``timeout_s``."""
        timeout_s = timeout_s or self.call_timeout_s
        attributes: dict[str, AttributeValue] = {
            schema.AZURE_OPERATION: action,
            schema.AZURE_RESOURCE_ID: resource_id or (self.resource_id(ref) if ref else ""),
            schema.AZURE_TIMEOUT_S: timeout_s,
        }
        if ref is not None:
            attributes[schema.AZURE_RESOURCE_GROUP] = ref.resource_group
        with tracer.start_as_current_span(
            schema.AZURE_SPAN_PREFIX + name,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        ) as span:
            try:
                async with asyncio.timeout(timeout_s):
                    return await call()
            except TimeoutError:
                error = AzureError(
                    f"Azure did not finish `{name}`"
                    + (f" of `{ref.name}`" if ref else "")
                    + f" within {timeout_s:g} s."
                    + (f" It may still finish: `aci status {ref.name}` shows." if ref else ""),
                    code="Timeout",
                )
                _record(span, error, None)
                raise error from None
            except Exception as exc:
                error = explain(exc, action, ref)
                _record(span, error, exc)
                raise error from exc

    # -- reads ------------------------------------------------------------

    async def find(self, text: str) -> Found:
        """GET the group ``text`` names, trying each configured resource group in order."""
        candidates = parse_ref(text, self.resource_groups)
        missing: AzureError | None = None
        for ref in candidates:
            try:
                return Found(ref, await self.get(ref))
            except AzureError as exc:
                if exc.outcome is not Outcome.BAD_INPUT:
                    raise
                missing = exc
        if len(candidates) > 1:
            groups = ", ".join(f"`{rg}`" for rg in self.resource_groups)
            raise AzureError(
                f"No container group `{candidates[0].name}` in {groups}.", Outcome.BAD_INPUT
            )
        assert missing is not None
        raise missing

    async def get(self, ref: GroupRef) -> Any:
        return await self._call(
            "get",
            f"{GROUPS}/read",
            ref,
            lambda: self.client.container_groups.get(ref.resource_group, ref.name),
        )

    async def group_refs(self) -> list[GroupRef]:
        """The groups of every configured resource group, names only: one list call each."""
        refs: list[GroupRef] = []
        for rg in self.resource_groups:

            async def listing(rg: str = rg) -> list[Any]:
                pager = self.client.container_groups.list_by_resource_group(rg)
                return [group async for group in pager]

            listed = await self._call(
                "list",
                f"{GROUPS}/read",
                None,
                listing,
                resource_id=f"/subscriptions/{self.subscription_id}/resourceGroups/{rg}",
            )
            refs.extend(GroupRef(rg, group.name) for group in listed)
        return refs

    async def list_groups(self) -> list[Found]:
        """Every group in every configured resource group, each read in full (the list
        omits instance views, which hold state and restart counts)."""
        refs = await self.group_refs()
        bound = asyncio.Semaphore(LIST_CONCURRENCY)

        async def read(ref: GroupRef) -> Found:
            async with bound:
                return Found(ref, await self.get(ref))

        return list(await asyncio.gather(*(read(ref) for ref in refs)))

    async def logs(self, ref: GroupRef, container: str, tail: int) -> str:
        result = await self._call(
            "logs",
            f"{GROUPS}/containers/logs/read",
            ref,
            lambda: self.client.containers.list_logs(
                ref.resource_group, ref.name, container, tail=tail
            ),
        )
        return str(getattr(result, "content", None) or "")

    # -- changes ----------------------------------------------------------

    async def _operation(
        self, name: str, ref: GroupRef, begin: Callable[[], Awaitable[Any]]
    ) -> Any:
        async def run() -> Any:
            poller = await begin()
            return await poller.result()

        return await self._call(
            name, f"{GROUPS}/{name}/action", ref, run, timeout_s=self.operation_timeout_s
        )

    async def restart(self, ref: GroupRef) -> None:
        groups = self.client.container_groups
        await self._operation(
            "restart", ref, lambda: groups.begin_restart(ref.resource_group, ref.name)
        )

    async def start(self, ref: GroupRef) -> None:
        groups = self.client.container_groups
        await self._operation(
            "start", ref, lambda: groups.begin_start(ref.resource_group, ref.name)
        )

    async def stop(self, ref: GroupRef) -> None:
        """Not a long-running operation on ARM: it answers once the group has stopped."""
        await self._call(
            "stop",
            f"{GROUPS}/stop/action",
            ref,
            lambda: self.client.container_groups.stop(ref.resource_group, ref.name),
            timeout_s=self.operation_timeout_s,
        )

    async def create_or_update(self, ref: GroupRef, group: Any, timeout_s: float) -> Any:
        """PUT the group and poll until ARM's provisioning finishes (Succeeded or Failed)."""

        async def run() -> Any:
            poller = await self.client.container_groups.begin_create_or_update(
                ref.resource_group, ref.name, group
            )
            return await poller.result()

        return await self._call(
            "create_or_update", f"{GROUPS}/write", ref, run, timeout_s=timeout_s
        )

    async def tag_resource_group(self, resource_group: str, name: str, value: str) -> None:
        """Merge one tag into ``resource_group``'s tags (ARM's Tags API; other tags stay).

        ``chatops deploy`` records the image it rolled out here, where the template reads
        it, so a later template deployment without ``image`` keeps it.
        """
        from azure.core.rest import HttpRequest

        scope = f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
        request = HttpRequest(
            "PATCH",
            f"{scope}/providers/{TAGS}/default",
            params={"api-version": TAGS_API_VERSION},
            json={"operation": "Merge", "properties": {"tags": {name: value}}},
        )

        async def run() -> None:
            response = await self.client._send_request(request)
            response.raise_for_status()

        await self._call("tag_resource_group", f"{TAGS}/write", None, run, resource_id=scope)

    async def deploy_template(
        self,
        resource_group: str,
        name: str,
        template: dict[str, Any],
        parameters: dict[str, Any],
        *,
        timeout_s: float,
        poll_s: float,
    ) -> None:
        """Deploy ``template`` into ``resource_group`` as the deployment ``name``
        (incremental) and wait until ARM has finished it.

        ``chatops deploy --key-vault`` writes the container group this way: ``parameters``
        are Key Vault references, which ARM resolves itself, so the secrets never pass
        through the caller. A deployment that ends Failed raises with the error of the
        resource that failed (e.g. ``InaccessibleImage``).
        """
        from azure.core.rest import HttpRequest

        scope = f"/subscriptions/{self.subscription_id}/resourceGroups/{resource_group}"
        path = f"{scope}/providers/{DEPLOYMENTS}/{name}"
        params = {"api-version": DEPLOYMENTS_API_VERSION}
        body = {
            "properties": {"mode": "Incremental", "template": template, "parameters": parameters}
        }

        async def put() -> None:
            response = await self.client._send_request(
                HttpRequest("PUT", path, params=params, json=body)
            )
            response.raise_for_status()

        async def status() -> dict[str, Any]:
            response = await self.client._send_request(HttpRequest("GET", path, params=params))
            response.raise_for_status()
            answer: dict[str, Any] = response.json()
            return answer

        async def run() -> None:
            from azure.core.exceptions import HttpResponseError

            try:
                await put()
            except HttpResponseError as exc:
                refused = explain(exc, f"{DEPLOYMENTS}/write", None)
                raise Refused(str(refused), refused.outcome, refused.code) from exc
            while True:
                answer = await self._call(
                    "deployment_status", f"{DEPLOYMENTS}/read", None, status, resource_id=path
                )
                properties = answer.get("properties") or {}
                state = properties.get("provisioningState")
                if state == "Succeeded":
                    return
                if state in ("Failed", "Canceled"):
                    raise _deployment_error(properties.get("error") or {}, state)
                await asyncio.sleep(poll_s)

        # One span for the deployment (the PUT and the wait), a child for each status read.
        await self._call(
            "deploy_template",
            f"{DEPLOYMENTS}/write",
            None,
            run,
            timeout_s=timeout_s,
            resource_id=path,
        )


def _deployment_error(error: dict[str, Any], state: str) -> AzureError:
    """A failed deployment's error, as the resource that failed put it (ARM wraps it in
    ``DeploymentFailed`` with ``details``)."""
    details = [d for d in error.get("details") or [] if isinstance(d, dict)]
    cause = details[0] if details else error
    code = str(cause.get("code") or error.get("code") or state)
    lines = str(cause.get("message") or "").strip().splitlines()
    message = schema.truncate(lines[0] if lines else state, 300)
    return AzureError(f"Azure reported {code}: {message}", code=code)


def _record(span: Span, error: AzureError, cause: BaseException | None) -> None:
    span.set_attribute(schema.AZURE_ERROR_CODE, error.code or type(cause or error).__name__)
    status = getattr(cause, "status_code", None)
    if isinstance(status, int):
        span.set_attribute(schema.AZURE_STATUS, status)
    if cause is not None:
        wait = retry_after_s(cause)
        if wait is not None:
            span.set_attribute(schema.AZURE_RETRY_AFTER_S, wait)
    if error.outcome is Outcome.ERROR:
        span.record_exception(error)
        span.set_status(Status(StatusCode.ERROR, error.code or type(error).__name__))
