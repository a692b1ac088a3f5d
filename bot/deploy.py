"""``chatops deploy``: put a new image into the running container group, faster than a template.

Phases, each a child span of one ``deploy`` span (which joins the pipeline's
trace through ``TRACEPARENT`` when ``chatops ci step`` runs it):

1. ``read``: GET the group as it is;
2. ``update``: replace one container's image and PUT the group back
   (``begin_create_or_update``), polling until ARM's provisioning Succeeded;
3. ``running``: poll until that container's state is Running;
4. ``ready``: when the group has an address and a port, poll ``/readyz`` until 200.

Secure environment variables: ARM's GET never returns their values, and a PUT
is a full replacement, so echoing the group back would blank them (the bot
would lose ``DISCORD_TOKEN``). The deploy therefore re-sends each secure
variable with the value of the same name in its own environment (the CI
secret), and refuses to deploy, before changing anything, when one is missing.

Rollback: once the new image has been PUT, a failure of any later step (ARM's
provisioning, the container never Running, ``/readyz`` never 200) would leave a
broken image serving nothing, so the previous image is put back and waited for
the same way (phase ``rollback``), unless ``rollback=False`` (``--no-rollback``).
The deploy still fails, and its span and message say what became of the group.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from opentelemetry import propagate, trace

from commands.azure.arm_client import Aci, AzureError
from telemetry import schema

tracer = trace.get_tracer(__name__)
T = TypeVar("T")
PROBE_TIMEOUT = aiohttp.ClientTimeout(total=5, connect=2)
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
    """What the deploy changed, once it has: enough to put the previous image back."""

    ref: Any
    group: Any
    container: Any
    previous_image: str


async def deploy(
    aci: Aci,
    request: DeployRequest,
    env: Mapping[str, str],
    echo: Callable[[str], None],
    *,
    on_phase: Callable[[str], None] | None = None,
) -> DeployReport:
    """Run the four phases within ``request.timeout_s``; ``DeployFailed`` says what broke.

    ``echo`` gets a line per finished phase; ``on_phase``, a phase's name as it starts.
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
            if changed:
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
    """The update, running and ready phases again, for the previous image, on a fresh clock."""
    clock = _Clock(request.timeout_s)
    target.container.image = target.previous_image
    updated = await aci.create_or_update(target.ref, target.group, max(clock.left(), 0.1))
    if updated.provisioning_state != "Succeeded":
        raise DeployFailed(f"update: provisioning ended {updated.provisioning_state}")
    await _until_running(aci, target.ref, target.container.name, request, clock)
    url = _health_url(target.group, request)
    if url is not None:
        await _until_ready(url, request, clock)


async def _phase(
    report: DeployReport, echo: Callable[[str], None], name: str, work: Awaitable[T]
) -> T:
    started = time.monotonic()
    hook = _phase_started.get()
    if hook is not None:
        hook(name)
    with tracer.start_as_current_span(schema.DEPLOY_PHASE_PREFIX + name):
        try:
            result = await work
        except AzureError as exc:
            raise DeployFailed(f"{name}: {exc}") from exc
    seconds = time.monotonic() - started
    report.phases.append((name, seconds))
    echo(f"{name:<8} {seconds:6.2f} s")
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
    """The four phases; ``changed`` gets the target once the new image is being PUT."""
    found = await _phase(report, echo, "read", aci.find(request.group))
    group = found.group
    container = _pick(group, request.container)
    report.previous_image = str(container.image)
    span.set_attribute(schema.DEPLOY_CONTAINER, container.name)
    span.set_attribute(schema.DEPLOY_PREVIOUS_IMAGE, report.previous_image)
    span.set_attribute(schema.AZURE_RESOURCE_ID, aci.resource_id(found.ref))
    _resend_secure_values(group, env)
    container.image = request.image
    changed.append(_Target(found.ref, group, container, report.previous_image))
    updated = await _phase(
        report, echo, "update", aci.create_or_update(found.ref, group, max(clock.left(), 0.1))
    )
    if updated.provisioning_state != "Succeeded":
        raise DeployFailed(f"update: provisioning ended {updated.provisioning_state}")
    await _phase(
        report, echo, "running", _until_running(aci, found.ref, container.name, request, clock)
    )
    url = _health_url(group, request)
    if url is not None:
        await _phase(report, echo, "ready", _until_ready(url, request, clock))


def _pick(group: Any, name: str | None) -> Any:
    containers = list(group.containers or [])
    names = [c.name for c in containers]
    if name is None:
        if len(containers) != 1:
            raise DeployFailed(f"{group.name} has containers {', '.join(names)}: pass --container")
        return containers[0]
    for container in containers:
        if container.name == name:
            return container
    raise DeployFailed(f"{group.name} has no container {name} (it has {', '.join(names)})")


def _resend_secure_values(group: Any, env: Mapping[str, str]) -> None:
    """Fill every secure variable (GET returns no value) from ``env``, or refuse."""
    missing: list[str] = []
    for container in group.containers or []:
        for var in container.environment_variables or []:
            if var.value is None and var.secure_value is None:
                if var.name in env:
                    var.secure_value = env[var.name]
                else:
                    missing.append(var.name)
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


def _health_url(group: Any, request: DeployRequest) -> str | None:
    address = group.ip_address
    if not request.check_health or address is None or not address.ports:
        return None
    host = address.ip or address.fqdn
    return f"http://{host}:{address.ports[0].port}{request.health_path}" if host else None


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
