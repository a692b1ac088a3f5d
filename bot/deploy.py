"""``chatops deploy``: roll a new image into the running container group, faster than a template.

Phases, each a child span of one ``deploy`` span (which joins the pipeline's
trace through ``TRACEPARENT`` when ``chatops ci step`` runs it):

1. ``read``: GET the group as it is;
2. for each bot container in turn (one per range of shards, ``bot-0``, ``bot-1``, ...):
   ``update`` (replace its image and PUT the group back, polling until ARM's
   provisioning Succeeded), ``running`` (poll until it is Running) and ``ready``
   (poll its ``/readyz`` until 200), before the next container is touched;
3. ``record``: write the image into the resource group tag ``chatops-bot-image``, which
   the template reads when it is deployed without ``image``: a later template
   deployment keeps what was rolled out instead of rolling the bot back.

Which containers: ``container`` if given; else the only one; else every container
running the same image repository as the new image (the template's TLS sidecar runs
Caddy and is left alone).

Secure environment variables and secret volumes: ARM's GET never returns their
values, and a PUT is a full replacement, so echoing the group back would blank them
(the bot would lose ``DISCORD_TOKEN`` and its commands file). Two ways to send them:

- with ``key_vault`` (``--key-vault VAULT_ID``): each write of the group is a template
  deployment of that one group, whose secure values are parameters given as Key Vault
  references (``key_vault_template``); ARM reads the secrets itself, so the deploy (and
  CI) never holds them. The secret names are ``KEY_VAULT_SECRETS``;
- without: each secure variable is re-sent with the value of the same name in the
  deploy's own environment (a CI secret), each secret volume file from
  ``<VOLUME>__<FILE>`` (``COMMANDS__COMMANDS_TOML``), and the deploy refuses, before
  changing anything, when one is missing or empty.

Rollback, as one: once a new image has been PUT, a failure of any later step (ARM's
provisioning, a container never Running, its ``/readyz`` never 200) would leave a
broken or mixed group, so every container already changed gets its previous image
back in one PUT, and each is waited for the same way (phase ``rollback``), unless
``rollback=False`` (``--no-rollback``). The deploy still fails, and its span and
message say what became of the group.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import re
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from opentelemetry import propagate, trace

from commands.azure.arm_client import Aci, AzureError, GroupRef, Refused
from telemetry import schema
from telemetry.tracer import module_tracer

tracer = module_tracer(__name__)
T = TypeVar("T")
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=5, connect=2)
# The resource group tag that records the deployed image; infra/aci/main.bicep reads it.
IMAGE_TAG = "chatops-bot-image"
# The template's TLS sidecar names the public host here; its Caddyfile routes
# /readyz/<container> to that container's health port.
SITE_ADDRESS = "SITE_ADDRESS"
# The template's secret volumes and their files, for when ARM's GET leaves the file names
# out too (infra/aci/main.bicep: the commands file).
TEMPLATE_SECRET_FILES = {"commands": ("commands.toml",)}
# --key-vault: the Key Vault secret each secure variable (or ``<VOLUME>__<FILE>``) comes
# from; the names infra/aci/main.bicepparam.example gives them. Any other variable:
# its name in lowercase with dashes (Key Vault names allow no underscore).
KEY_VAULT_SECRETS = {
    "DISCORD_TOKEN": "discord-token",
    "HONEYCOMB_API_KEY": "honeycomb-ingest-key",
    "CIRCLECI_OTLP_X_HONEYCOMB_TEAM": "honeycomb-ingest-key",
    "HONEYCOMB_MARKER_KEY": "honeycomb-config-key",
    "CIRCLECI_HOOK_SECRET": "circleci-hook-secret",
    "BUILDKITE_API_TOKEN": "buildkite-api-token",
    "COMMANDS__COMMANDS_TOML": "chatops-commands-toml",
}
KEY_VAULT_ID = re.compile(
    r"^/subscriptions/[^/]+/resourceGroups/[^/]+/providers/Microsoft\.KeyVault/vaults/"
    r"[A-Za-z][A-Za-z0-9-]{1,22}[A-Za-z0-9]$",
    re.IGNORECASE,
)
# The container group's resource in the deployed template: the API version of the SDK's
# calls and of infra/aci/main.bicep.
GROUP_TYPE = "Microsoft.ContainerInstance/containerGroups"
GROUP_API_VERSION = "2023-05-01"
TEMPLATE_SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
# The progress hook: told each phase's name as it starts (``chatops deploy``'s live
# status line). Set once per ``deploy`` call, read by ``_phase``.
_phase_started: ContextVar[Callable[[str], None] | None] = ContextVar("phase_started", default=None)


class DeployFailed(Exception):
    """The deploy did not complete; the message is one line for stderr."""


@dataclass(frozen=True)
class DeployRequest:
    group: str
    image: str
    container: str | None = None
    timeout_s: float = 300.0  # for the deploy, and again for a rollback
    health_path: str = "/readyz"
    check_health: bool = True
    poll_s: float = 2.0
    rollback: bool = True
    record_image: bool = True  # the resource group tag the template reads (IMAGE_TAG)
    key_vault: str | None = None  # a vault's resource id: secure values from it (see above)


@dataclass
class DeployReport:
    image: str
    previous_image: str
    group: str
    phases: list[tuple[str, float]] = field(default_factory=list)

    @property
    def total_s(self) -> float:
        return sum(seconds for _, seconds in self.phases)

    def summary(self) -> str:
        parts = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in self.phases)
        return f"deployed {self.image} to {self.group} in {self.total_s:.2f} s ({parts})"


class _Clock:
    def __init__(self, timeout_s: float) -> None:
        self.deadline = time.monotonic() + timeout_s

    def left(self) -> float:
        return max(0.0, self.deadline - time.monotonic())


@dataclass
class _Target:
    """What the deploy changed, once it has: enough to put the previous images back."""

    ref: Any
    group: Any
    containers: list[Any]  # changed so far, in order
    previous: dict[str, str]  # container name -> image before the deploy

    @property
    def previous_image(self) -> str:
        return next(iter(self.previous.values()), "")


async def deploy(
    aci: Aci,
    request: DeployRequest,
    env: Mapping[str, str],
    echo: Callable[[str], None],
    *,
    on_phase: Callable[[str], None] | None = None,
) -> DeployReport:
    """Run the phases within ``request.timeout_s``; ``DeployFailed`` says what broke.

    ``echo`` gets a line per finished phase; ``on_phase``, a phase's name as it starts
    (with the container's name when several are rolled).
    """
    _phase_started.set(on_phase)
    parent = propagate.extract({"traceparent": env.get("TRACEPARENT", "")})
    clock = _Clock(request.timeout_s)
    with tracer.start_as_current_span(
        schema.DEPLOY_SPAN,
        context=parent,
        attributes={schema.DEPLOY_IMAGE: request.image},
        record_exception=False,
    ) as span:
        report = DeployReport(request.image, "", request.group)
        changed: list[_Target] = []
        try:
            await _phases(aci, request, env, echo, clock, span, report, changed)
        except DeployFailed as exc:
            result, message = "failure", str(exc)
            if changed and changed[0].containers:
                result, message = await _after_failure(aci, request, echo, report, changed[0], exc)
            span.set_attribute(schema.DEPLOY_RESULT, result)
            span.set_status(trace.Status(trace.StatusCode.ERROR, message[:200]))
            raise DeployFailed(message) from exc
        span.set_attribute(schema.DEPLOY_RESULT, "success")
        return report


async def _after_failure(
    aci: Aci,
    request: DeployRequest,
    echo: Callable[[str], None],
    report: DeployReport,
    target: _Target,
    failure: DeployFailed,
) -> tuple[str, str]:
    """Put the previous image back (unless told not to): the result and the message."""
    if not request.rollback:
        return "failure", f"{failure}; {request.image} left in place (--no-rollback)"
    echo(f"rolling back to {target.previous_image}")
    try:
        await _phase(report, echo, "rollback", _roll_back(aci, request, target))
    except DeployFailed as exc:
        detail = str(exc).removeprefix("rollback: ")
        return "rollback_failed", (
            f"{failure}; rollback to {target.previous_image} failed too: {detail}"
        )
    return "rolled_back", f"{failure}; rolled back to {target.previous_image}"


async def _roll_back(aci: Aci, request: DeployRequest, target: _Target) -> None:
    """Every changed container back to its previous image in one PUT, then each waited for."""
    clock = _Clock(request.timeout_s)
    for container in target.containers:
        container.image = target.previous[container.name]
    state = await _write(aci, request, target.ref, target.group, max(clock.left(), 0.1))
    if state != "Succeeded":
        raise DeployFailed(f"update: provisioning ended {state}")
    for container in target.containers:
        await _until_running(aci, target.ref, container.name, request, clock)
        url = _health_url(target.group, container, request)
        if url is not None:
            await _until_ready(url, request, clock)


async def _phase(
    report: DeployReport,
    echo: Callable[[str], None],
    name: str,
    work: Awaitable[T],
    label: str = "",
) -> T:
    """One timed phase (``label`` names the container when several are rolled)."""
    started = time.monotonic()
    hook = _phase_started.get()
    if hook is not None:
        hook(name + label)
    with tracer.start_as_current_span(schema.DEPLOY_PHASE_PREFIX + name) as span:
        if label:
            span.set_attribute(schema.DEPLOY_CONTAINER, label.strip())
        try:
            result = await work
        except AzureError as exc:
            raise DeployFailed(f"{name}{label}: {exc}") from exc
    seconds = time.monotonic() - started
    report.phases.append((name + label, seconds))
    echo(f"{name + label:<8} {seconds:6.2f} s")
    return result


async def _phases(
    aci: Aci,
    request: DeployRequest,
    env: Mapping[str, str],
    echo: Callable[[str], None],
    clock: _Clock,
    span: trace.Span,
    report: DeployReport,
    changed: list[_Target],
) -> None:
    """Read, then each container in turn; ``changed`` gets the target before the first PUT."""
    found = await _phase(report, echo, "read", aci.find(request.group))
    group = found.group
    containers = _pick(group, request.container, request.image)
    report.previous_image = str(containers[0].image)
    span.set_attribute(schema.DEPLOY_CONTAINER, ",".join(c.name for c in containers))
    span.set_attribute(schema.DEPLOY_PREVIOUS_IMAGE, report.previous_image)
    span.set_attribute(schema.AZURE_RESOURCE_ID, aci.resource_id(found.ref))
    if request.key_vault is None:
        _resend_secure_values(group, env)
    target = _Target(found.ref, group, [], {c.name: str(c.image) for c in containers})
    changed.append(target)
    several = len(containers) > 1
    for container in containers:
        label = f" {container.name}" if several else ""
        container.image = request.image
        target.containers.append(container)
        write = _write(aci, request, found.ref, group, max(clock.left(), 0.1))
        try:
            state = await _phase(report, echo, "update", write, label)
        except DeployFailed as exc:
            if isinstance(exc.__cause__, Refused):
                # ARM refused the request itself (a Key Vault secret it could not read, say):
                # this container was not changed, so there is nothing to roll back for it.
                target.containers.remove(container)
                container.image = target.previous[container.name]
            raise
        if state != "Succeeded":
            raise DeployFailed(f"update: provisioning ended {state}")
        running = _until_running(aci, found.ref, container.name, request, clock)
        await _phase(report, echo, "running", running, label)
        url = _health_url(group, container, request)
        if url is not None:
            await _phase(report, echo, "ready", _until_ready(url, request, clock), label)
    if request.record_image:
        changed.clear()  # the new image runs everywhere: nothing to roll back from here on
        tag = aci.tag_resource_group(found.ref.resource_group, IMAGE_TAG, request.image)
        try:
            await _phase(report, echo, "record", tag)
        except DeployFailed as exc:
            raise DeployFailed(
                f"{request.image} runs, but {exc}; a template deployment without image= "
                f"would go back to the image in the tag {IMAGE_TAG}"
            ) from exc


def _repository(image: str) -> str:
    """``registry/name`` of ``registry/name:tag`` or ``registry/name@sha256:...``."""
    name = image.split("@", 1)[0]
    last = name.rsplit("/", 1)[-1]
    return name[: len(name) - len(last)] + last.split(":", 1)[0]


def _pick(group: Any, name: str | None, image: str) -> list[Any]:
    """The containers to roll, in the group's order (``bot-0`` first)."""
    containers = list(group.containers or [])
    names = [c.name for c in containers]
    if name is not None:
        for container in containers:
            if container.name == name:
                return [container]
        raise DeployFailed(f"{group.name} has no container {name} (it has {', '.join(names)})")
    if len(containers) == 1:
        return containers
    same = [c for c in containers if _repository(str(c.image)) == _repository(image)]
    if not same:
        raise DeployFailed(
            f"{group.name} has containers {', '.join(names)}, none running "
            f"{_repository(image)}: pass --container"
        )
    return same


async def _write(
    aci: Aci, request: DeployRequest, ref: GroupRef, group: Any, timeout_s: float
) -> str:
    """PUT the group as it now is, and wait for ARM; its provisioning state.

    With a Key Vault, as a template deployment whose secure values ARM reads from the vault.
    """
    if request.key_vault is None:
        updated = await aci.create_or_update(ref, group, timeout_s)
        return str(updated.provisioning_state)
    template, parameters = key_vault_template(group, request.key_vault)
    name = f"chatops-deploy-{ref.name[:30]}-{uuid.uuid4().hex[:12]}"
    await aci.deploy_template(
        ref.resource_group, name, template, parameters, timeout_s=timeout_s, poll_s=request.poll_s
    )
    return "Succeeded"


def key_vault_secret(variable: str) -> str:
    """The Key Vault secret a secure variable (or ``<VOLUME>__<FILE>``) comes from."""
    known = KEY_VAULT_SECRETS.get(variable)
    return known or re.sub(r"[^a-z0-9]+", "-", variable.lower()).strip("-")


def key_vault_template(group: Any, vault_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """A template that deploys ``group`` as it is, and its parameters.

    Every secure variable and secret volume file ARM did not return becomes a
    ``securestring`` parameter given as a reference to its Key Vault secret
    (``key_vault_secret``); everything else is sent as read, with a leading ``[``
    doubled so ARM takes it literally.
    """
    body: dict[str, Any] = _literal(copy.deepcopy(group.serialize()))
    declared: dict[str, Any] = {}
    parameters: dict[str, Any] = {}

    def reference(variable: str) -> str:
        declared[variable] = {"type": "securestring"}
        parameters[variable] = {
            "reference": {"keyVault": {"id": vault_id}, "secretName": key_vault_secret(variable)}
        }
        return f"parameters('{variable}')"

    properties = body.setdefault("properties", {})
    for container in properties.get("containers") or []:
        for var in container.get("properties", {}).get("environmentVariables") or []:
            if var.get("value") is None and var.get("secureValue") is None:
                var.pop("value", None)
                var["secureValue"] = f"[{reference(var['name'])}]"
    for volume in properties.get("volumes") or []:
        kinds = ("azureFile", "emptyDir", "gitRepo")
        if volume.get("secret") is None and any(volume.get(kind) is not None for kind in kinds):
            continue
        files = list(volume.get("secret") or ()) or list(
            TEMPLATE_SECRET_FILES.get(volume["name"], ())
        )
        secret = dict(volume.get("secret") or {})
        for file in files:
            if not secret.get(file):
                variable = secret_file_variable(volume["name"], file)
                secret[file] = f"[base64({reference(variable)})]"
        volume["secret"] = secret
    resource = {"type": GROUP_TYPE, "apiVersion": GROUP_API_VERSION, "name": group.name, **body}
    template = {
        "$schema": TEMPLATE_SCHEMA,
        "contentVersion": "1.0.0.0",
        "parameters": declared,
        "resources": [resource],
    }
    return template, parameters


def _literal(value: Any) -> Any:
    """``value`` with every string that starts with ``[`` escaped as ``[[`` (ARM would
    read it as an expression)."""
    if isinstance(value, dict):
        return {key: _literal(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_literal(item) for item in value]
    if isinstance(value, str) and value.startswith("["):
        return "[" + value
    return value


def secret_file_variable(volume: str, file: str) -> str:
    """The variable a secret volume's file is re-sent from: ``commands``/``commands.toml``
    -> ``COMMANDS__COMMANDS_TOML``."""
    return re.sub(r"[^A-Z0-9]", "_", f"{volume}__{file}".upper())


def _resend_secure_values(group: Any, env: Mapping[str, str]) -> None:
    """Fill every secure variable and secret volume file (GET returns no value) from
    ``env``, or refuse before anything changes. An empty value counts as missing: sending
    it would blank the secret as surely as leaving it out."""
    missing: list[str] = []
    for container in group.containers or []:
        for var in container.environment_variables or []:
            if var.value is None and var.secure_value is None:
                if env.get(var.name):
                    var.secure_value = env[var.name]
                else:
                    missing.append(var.name)
    for volume in group.volumes or []:
        kinds = (volume.azure_file, volume.empty_dir, volume.git_repo)
        if volume.secret is None and any(kind is not None for kind in kinds):
            continue
        files = list(volume.secret or ()) or list(TEMPLATE_SECRET_FILES.get(volume.name, ()))
        filled = dict(volume.secret or {})
        for file in files:
            if filled.get(file):
                continue
            name = secret_file_variable(volume.name, file)
            if env.get(name):
                filled[file] = base64.b64encode(env[name].encode()).decode()
            else:
                missing.append(name)
        volume.secret = filled
    if missing:
        names = ", ".join(sorted(set(missing)))
        raise DeployFailed(
            f"secure environment variable(s) {names} must be set here: Azure does not return "
            "their values, and the update would blank them"
        )


async def _until_running(
    aci: Aci, ref: Any, name: str, request: DeployRequest, clock: _Clock
) -> None:
    state, detail = "Unknown", ""
    while True:
        group = await aci.get(ref)
        for container in group.containers or []:
            if container.name != name:
                continue
            current = getattr(container.instance_view, "current_state", None)
            state = str(getattr(current, "state", None) or "Unknown")
            detail = str(getattr(current, "detail_status", None) or "")
        if state == "Running":
            return
        if clock.left() <= 0:
            why = f" ({detail})" if detail else ""
            raise DeployFailed(
                f"running: container {name} is {state}{why} after {request.timeout_s:g} s"
            )
        await asyncio.sleep(min(request.poll_s, clock.left()))


def _health_url(group: Any, container: Any, request: DeployRequest) -> str | None:
    """Where ``container``'s readiness shows from outside, or None (no check).

    Behind the template's TLS sidecar: ``https://SITE_ADDRESS/readyz/<container>`` (the
    only path besides the webhook that its Caddyfile lets through). Otherwise the group's
    address and the container's own port (the first of the group's ports when the
    container declares none).
    """
    if not request.check_health:
        return None
    for other in group.containers or []:
        for var in other.environment_variables or []:
            if var.name == SITE_ADDRESS:
                site = var.value
                if not site or site == "localhost":
                    return None  # no public certificate yet: nothing to ask from outside
                return f"https://{site}/readyz/{container.name}"
    address = group.ip_address
    if address is None or not address.ports:
        return None
    host = address.ip or address.fqdn
    own = [p.port for p in container.ports or []]
    port = own[0] if own else address.ports[0].port
    return f"http://{host}:{port}{request.health_path}" if host else None


async def _until_ready(url: str, request: DeployRequest, clock: _Clock) -> None:
    last = "no answer"
    async with aiohttp.ClientSession(timeout=PROBE_TIMEOUT) as session:
        while True:
            try:
                async with session.get(url) as response:
                    if response.status == 200:
                        return
                    last = f"HTTP {response.status}"
            except (aiohttp.ClientError, TimeoutError) as exc:
                last = type(exc).__name__
            if clock.left() <= 0:
                raise DeployFailed(
                    f"ready: {url} answered {last} until the {request.timeout_s:g} s timeout"
                )
            await asyncio.sleep(min(request.poll_s, clock.left()))
