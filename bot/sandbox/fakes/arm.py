"""A fake Azure Resource Manager for Container Instances (api-version 2023-05-01), over TLS.

Shaped after the documented REST API so the real ``azure-mgmt-containerinstance``
client talks to it unchanged: container groups list/get/create-or-update, start,
stop, restart, container logs, and long-running operations that answer 201/202
with an ``Azure-AsyncOperation`` URL polled until ``Succeeded`` or ``Failed``.
As on ARM, the list omits each container's ``instanceView`` and a GET never
returns a secure environment variable's value.

Template deployments (``Microsoft.Resources/deployments``, incremental) are faked for the
one shape ``chatops deploy --key-vault`` sends: a single container group whose secure
values are ``[parameters('X')]`` (or ``[base64(parameters('X'))]`` for a secret volume
file), each parameter a Key Vault reference that the fake resolves from ``vault_secrets``
the way ARM does, server-side, so the caller never holds the secret.

Faults are planned per request (``fail``): ARM's error bodies
(``{"error": {"code", "message"}}``), ``Retry-After`` on 429, slow answers.
"""

from __future__ import annotations

import asyncio
import base64
import copy
import re
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Self

from aiohttp import web
from azure.core.credentials import AccessToken

from bot.sandbox.fakes.tls import SelfSignedCertificate

JSON = dict[str, Any]
API_VERSION = "2023-05-01"
TAGS_API_VERSION = "2021-04-01"  # Microsoft.Resources/tags
DEPLOYMENTS_API_VERSION = "2024-03-01"  # Microsoft.Resources/deployments
DEPLOYMENTS = "Microsoft.Resources/deployments"
_PARAMETER = re.compile(r"^\[(base64\()?parameters\('(\w+)'\)(\))?\]$")
PROVIDER = "Microsoft.ContainerInstance"
TOKEN = "fake-arm-token"  # a test token for a local fake


def now_iso() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class StaticCredential:
    """The injected credential (tests, the console): azure-core's async ``get_token``
    protocol, one fixed token.

    ``unavailable`` makes it behave like ``DefaultAzureCredential`` with nothing configured.
    """

    def __init__(self, token: str = TOKEN, *, unavailable: bool = False) -> None:
        self.token = token
        self.unavailable = unavailable
        self.scopes: list[tuple[str, ...]] = []

    async def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        if self.unavailable:
            from azure.identity import CredentialUnavailableError

            raise CredentialUnavailableError("DefaultAzureCredential failed to retrieve a token")
        return AccessToken(self.token, int(time.time()) + 3600)

    async def close(self) -> None:
        return None

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


@dataclass
class ArmFault:
    method: str
    path: re.Pattern[str]
    status: int | None
    code: str
    message: str
    retry_after: str | None
    delay: float
    times: int


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any
    status: int = 0


@dataclass
class Operation:
    done_at: float
    apply: Any  # callable run once when the operation completes
    failure: JSON | None = None
    finished: bool = False


@dataclass
class FakeArm:
    """Container groups by (resource group, name), added with ``add_group``."""

    certificate: SelfSignedCertificate
    subscription: str = "00000000-0000-0000-0000-000000000001"
    location: str = "westeurope"
    token: str = TOKEN
    operation_s: float = 0.2
    poll_retry_after: str | None = None
    groups: dict[tuple[str, str], JSON] = field(default_factory=dict)
    secure_values: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    # (rg, group, volume, file) -> the base64 content a PUT sent for a secret volume file
    secret_files: dict[tuple[str, str, str, str], str] = field(default_factory=dict)
    logs: dict[tuple[str, str, str], str] = field(default_factory=dict)
    unpullable_images: set[str] = field(default_factory=set)
    crashing_images: set[str] = field(default_factory=set)
    requests: list[Seen] = field(default_factory=list)
    faults: list[ArmFault] = field(default_factory=list)
    operations: dict[str, Operation] = field(default_factory=dict)
    # Resource group tags (ARM's Tags API, PATCH with operation Merge).
    tags: dict[str, dict[str, str]] = field(default_factory=dict)
    # Key Vault secrets ARM may read for a deployment: (vault resource id, name) -> value.
    vault_secrets: dict[tuple[str, str], str] = field(default_factory=dict)
    # Template deployments by (rg, name): the operation that applies the group.
    deployments: dict[tuple[str, str], str] = field(default_factory=dict)
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    # -- lifecycle --------------------------------------------------------

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._middleware])
        base = "/subscriptions/{sub}/resourceGroups/{rg}/providers/" + PROVIDER
        group = base + "/containerGroups/{name}"
        app.add_routes(
            [
                web.get(base + "/containerGroups", self.list_groups),
                web.get(group, self.get_group),
                web.put(group, self.put_group),
                web.post(group + "/restart", self.restart),
                web.post(group + "/start", self.start),
                web.post(group + "/stop", self.stop),
                web.get(group + "/containers/{container}/logs", self.container_logs),
                web.patch(
                    "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.Resources/tags/default",
                    self.patch_tags,
                ),
                web.get(
                    f"/subscriptions/{{sub}}/providers/{PROVIDER}/locations/{{loc}}/operations/{{op}}",
                    self.operation,
                ),
                web.put(
                    f"/subscriptions/{{sub}}/resourceGroups/{{rg}}/providers/{DEPLOYMENTS}/{{name}}",
                    self.put_deployment,
                ),
                web.get(
                    f"/subscriptions/{{sub}}/resourceGroups/{{rg}}/providers/{DEPLOYMENTS}/{{name}}",
                    self.get_deployment,
                ),
            ]
        )
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(
            self._runner, "127.0.0.1", 0, ssl_context=self.certificate.server_context()
        )
        await site.start()
        self.port = int(self._runner.addresses[0][1])
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    # -- the world --------------------------------------------------------

    def resource_id(self, rg: str, name: str) -> str:
        return (
            f"/subscriptions/{self.subscription}/resourceGroups/{rg}"
            f"/providers/{PROVIDER}/containerGroups/{name}"
        )

    def add_group(
        self,
        rg: str,
        name: str,
        *,
        image: str = "chatops.azurecr.io/chatops-bot:1.0.0",
        containers: list[str] | None = None,
        state: str = "Running",
        ip: str | None = "20.50.1.2",
        fqdn: str | None = None,
        port: int = 8080,
        env: dict[str, str] | None = None,
        secure_env: dict[str, str] | None = None,
        restart_count: int = 0,
    ) -> JSON:
        """A container group as ARM returns it from a GET (instance views included)."""
        names = containers or [name]
        env_list: list[JSON] = [{"name": k, "value": v} for k, v in (env or {}).items()]
        for key, value in (secure_env or {}).items():
            env_list.append({"name": key})
            for container in names:
                self.secure_values[(rg, name, container, key)] = value
        group: JSON = {
            "id": self.resource_id(rg, name),
            "name": name,
            "type": f"{PROVIDER}/containerGroups",
            "location": self.location,
            "properties": {
                "provisioningState": "Succeeded",
                "sku": "Standard",
                "osType": "Linux",
                "restartPolicy": "Always",
                "containers": [
                    {
                        "name": c,
                        "properties": {
                            "image": image,
                            "ports": [{"protocol": "TCP", "port": port}],
                            "environmentVariables": copy.deepcopy(env_list),
                            "resources": {"requests": {"cpu": 1.0, "memoryInGB": 1.5}},
                            "instanceView": _instance_view(state, restart_count, image),
                        },
                    }
                    for c in names
                ],
                "instanceView": {"state": state, "events": []},
            },
        }
        if ip is not None or fqdn is not None:
            address: JSON = {"ports": [{"protocol": "TCP", "port": port}], "type": "Public"}
            if ip is not None:
                address["ip"] = ip
            if fqdn is not None:
                address["fqdn"] = fqdn
                address["dnsNameLabel"] = fqdn.split(".", 1)[0]
            group["properties"]["ipAddress"] = address
        self.groups[(rg, name)] = group
        for container in names:
            self.logs.setdefault((rg, name, container), f"{container} started\nlistening\n")
        return group

    def set_state(self, rg: str, name: str, state: str) -> None:
        """Put a group in ``state`` (``Stopped``, ``Running``), as a stop or start would."""
        _set_state(self.groups[(rg, name)], state)

    def fail(
        self,
        method: str,
        path: str,
        *,
        status: int | None,
        code: str = "",
        message: str = "",
        retry_after: str | None = None,
        delay: float = 0.0,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` requests matching (``path`` is a regex searched in the
        path) with ``status`` and ARM's error body; ``status=None`` only delays."""
        self.faults.append(
            ArmFault(
                method.upper(), re.compile(path), status, code, message, retry_after, delay, times
            )
        )

    def calls(self, method: str, path_end: str) -> list[Seen]:
        return [r for r in self.requests if r.method == method and r.path.endswith(path_end)]

    # -- middleware: auth, api-version, faults -------------------------------

    @web.middleware
    async def _middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        body = await request.json() if request.can_read_body else None
        response = await self._answer(request, handler)
        self.requests.append(
            Seen(
                request.method,
                request.path,
                dict(request.query),
                dict(request.headers),
                body,
                response.status,
            )
        )
        return response

    async def _answer(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return arm_error(401, "AuthenticationFailed", "Authentication failed.")
        expected = API_VERSION
        if "/Microsoft.Resources/tags/" in request.path:
            expected = TAGS_API_VERSION
        elif f"/{DEPLOYMENTS}/" in request.path:
            expected = DEPLOYMENTS_API_VERSION
        if request.query.get("api-version") != expected:
            return arm_error(400, "InvalidApiVersionParameter", "The api-version is invalid.")
        for fault in self.faults:
            hit = fault.times > 0 and fault.method in ("*", request.method)
            if hit and fault.path.search(request.path):
                fault.times -= 1
                if fault.delay:
                    await asyncio.sleep(fault.delay)
                if fault.status is not None:
                    headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                    return arm_error(fault.status, fault.code, fault.message, headers)
                break
        try:
            response: web.StreamResponse = await handler(request)
            return response
        except ArmErrorResponse as exc:
            return exc.response
        except web.HTTPException as exc:
            return arm_error(exc.status, "NotFound", "The requested resource was not found.")

    # -- container groups -------------------------------------------------

    def _group(self, request: web.Request) -> JSON:
        info = request.match_info
        if info["sub"] != self.subscription:
            raise web.HTTPNotFound()
        group = self.groups.get((info["rg"], info["name"]))
        if group is None:
            raise web.HTTPNotFound()
        return group

    async def list_groups(self, request: web.Request) -> web.Response:
        """As on ARM, containers in a list carry no ``instanceView``."""
        rg = request.match_info["rg"]
        value = []
        for (group_rg, _), group in sorted(self.groups.items()):
            if group_rg != rg:
                continue
            listed = copy.deepcopy(group)
            for container in listed["properties"]["containers"]:
                container["properties"].pop("instanceView", None)
            listed["properties"].pop("instanceView", None)
            value.append(listed)
        return web.json_response({"value": value})

    async def get_group(self, request: web.Request) -> web.Response:
        return web.json_response(self._group_or_404(request))

    async def put_group(self, request: web.Request) -> web.Response:
        """Create or update: 201/200 with ``provisioningState`` Pending and an async operation."""
        info = request.match_info
        rg, name = info["rg"], info["name"]
        existed = (rg, name) in self.groups
        group, op_id = self._put(rg, name, await request.json())
        headers = self._operation_headers(op_id)
        return web.json_response(group, status=200 if existed else 201, headers=headers)

    def _put(self, rg: str, name: str, body: JSON) -> tuple[JSON, str]:
        """Store the group as a PUT sent it (secure values kept apart); the operation's id."""
        group = copy.deepcopy(body)
        group.update(id=self.resource_id(rg, name), name=name, type=f"{PROVIDER}/containerGroups")
        props = group.setdefault("properties", {})
        props["provisioningState"] = "Pending"
        props.setdefault("instanceView", {"state": "Pending", "events": []})
        images: list[str] = []
        for container in props.get("containers", []):
            cprops = container["properties"]
            images.append(cprops.get("image", ""))
            kept = []
            for var in cprops.get("environmentVariables", []):
                key = (rg, name, container["name"], var["name"])
                if "secureValue" in var:
                    self.secure_values[key] = var["secureValue"]
                    kept.append({"name": var["name"]})
                elif "value" in var:
                    kept.append(var)
                else:
                    # Sent with neither value: ARM keeps the name and the value is gone.
                    self.secure_values.pop(key, None)
                    kept.append({"name": var["name"], "value": ""})
            cprops["environmentVariables"] = kept
        # Secret volumes: kept here, and like secure variables never returned by GET
        # (the file names stay, each value null).
        for volume in props.get("volumes", []):
            if "secret" in volume:
                for file, value in volume["secret"].items():
                    if value is not None:
                        self.secret_files[(rg, name, volume["name"], file)] = value
                    else:
                        self.secret_files.pop((rg, name, volume["name"], file), None)
                volume["secret"] = dict.fromkeys(volume["secret"])
            old = cprops.get("instanceView") or {}
            cprops["instanceView"] = {**old, "currentState": {"state": "Waiting"}}
        self.groups[(rg, name)] = group
        bad = next((i for i in images if i in self.unpullable_images), None)

        def apply() -> None:
            if bad is not None:
                props["provisioningState"] = "Failed"
                props["instanceView"] = {"state": "Failed", "events": []}
                return
            props["provisioningState"] = "Succeeded"
            props["instanceView"] = {"state": "Running", "events": []}
            for container in props.get("containers", []):
                image = container["properties"].get("image", "")
                state = "Waiting" if image in self.crashing_images else "Running"
                count = 3 if state == "Waiting" else 0
                container["properties"]["instanceView"] = _instance_view(state, count, image)

        failure = (
            {"code": "InaccessibleImage", "message": f"The image '{bad}' is not accessible."}
            if bad
            else None
        )
        return group, self._new_operation(apply, failure)

    # -- template deployments (chatops deploy --key-vault) -----------------

    async def put_deployment(self, request: web.Request) -> web.Response:
        """Resolve the parameters (Key Vault references included), then deploy the one
        container group the template holds, as a PUT of it would."""
        info = request.match_info
        rg, name = info["rg"], info["name"]
        body: JSON = await request.json()
        props = body.get("properties") or {}
        if props.get("mode") != "Incremental":
            return arm_error(400, "InvalidDeploymentMode", "only Incremental is faked")
        template = props.get("template") or {}
        try:
            values = self._parameters(
                template.get("parameters") or {}, props.get("parameters") or {}
            )
            (resource,) = template.get("resources") or [None]
            if (
                not isinstance(resource, dict)
                or resource.get("type") != f"{PROVIDER}/containerGroups"
                or resource.get("apiVersion") != API_VERSION
            ):
                raise _Invalid(f"only one {PROVIDER}/containerGroups@{API_VERSION} is faked")
            group = _evaluate(resource, values)
        except _Invalid as exc:
            return arm_error(400, exc.code, str(exc))
        except ValueError:
            return arm_error(400, "InvalidTemplate", "only one resource is faked")
        fields = ("location", "identity", "tags", "properties")
        _, op_id = self._put(rg, group["name"], {k: group[k] for k in fields if k in group})
        self.deployments[(rg, name)] = op_id
        return web.json_response(self._deployment(rg, name), status=201)

    async def get_deployment(self, request: web.Request) -> web.Response:
        info = request.match_info
        if (info["rg"], info["name"]) not in self.deployments:
            return arm_error(404, "DeploymentNotFound", f"Deployment '{info['name']}' not found.")
        return web.json_response(self._deployment(info["rg"], info["name"]))

    def _deployment(self, rg: str, name: str) -> JSON:
        """The deployment as ARM shows it: Running until its group's operation is done."""
        op = self.operations[self.deployments[(rg, name)]]
        props: JSON = {"mode": "Incremental", "timestamp": now_iso()}
        if time.monotonic() < op.done_at:
            props["provisioningState"] = "Running"
        else:
            if not op.finished:
                op.finished = True
                op.apply()
            props["provisioningState"] = "Failed" if op.failure else "Succeeded"
            if op.failure:
                props["error"] = {
                    "code": "DeploymentFailed",
                    "message": "At least one resource deployment operation failed.",
                    "details": [op.failure],
                }
        return {
            "id": f"/subscriptions/{self.subscription}/resourceGroups/{rg}/providers/"
            f"{DEPLOYMENTS}/{name}",
            "name": name,
            "type": DEPLOYMENTS,
            "properties": props,
        }

    def _parameters(self, declared: JSON, given: JSON) -> dict[str, Any]:
        """Each declared parameter's value: given, a Key Vault secret, or its default."""
        values: dict[str, Any] = {}
        for name, spec in declared.items():
            supplied = given.get(name)
            if isinstance(supplied, dict) and "reference" in supplied:
                ref = supplied["reference"]
                vault, secret = ref["keyVault"]["id"], ref["secretName"]
                key = next(
                    (
                        k
                        for k in self.vault_secrets
                        if k[0].lower() == vault.lower() and k[1] == secret
                    ),
                    None,
                )
                if key is None:
                    raise _Invalid(
                        f"The secret '{secret}' of key vault '{vault.rsplit('/', 1)[-1]}' "
                        "could not be read for the deployment.",
                        "KeyVaultParameterReferenceSecretRetrieveFailed",
                    )
                values[name] = self.vault_secrets[key]
            elif isinstance(supplied, dict) and "value" in supplied:
                values[name] = supplied["value"]
            elif "defaultValue" in spec:
                values[name] = spec["defaultValue"]
            else:
                raise _Invalid(f"The template parameter '{name}' has no value.")
        return values

    async def patch_tags(self, request: web.Request) -> web.Response:
        """Tags - Update At Scope: Merge adds or replaces the given tags, keeps the others."""
        body: JSON = await request.json()
        if body.get("operation") != "Merge":
            return arm_error(400, "InvalidRequest", "only Merge is faked")
        tags = self.tags.setdefault(request.match_info["rg"], {})
        tags.update(body["properties"]["tags"])
        scope = request.path.removesuffix("/providers/Microsoft.Resources/tags/default")
        return web.json_response(
            {
                "id": request.path,
                "name": "default",
                "type": "Microsoft.Resources/tags",
                "properties": {"tags": dict(tags)},
                "scope": scope,
            }
        )

    async def restart(self, request: web.Request) -> web.Response:
        group = self._group_or_404(request)

        def apply() -> None:
            _set_state(group, "Running", restarted=True)

        # The API documents 204 for restart, still with an Azure-AsyncOperation to poll.
        return web.Response(status=204, headers=self._operation(apply))

    async def start(self, request: web.Request) -> web.Response:
        group = self._group_or_404(request)

        def apply() -> None:
            _set_state(group, "Running", restarted=True)

        return web.Response(status=202, headers=self._operation(apply))

    async def stop(self, request: web.Request) -> web.Response:
        """Not a long-running operation on ARM: 204 once the group is stopped."""
        group = self._group_or_404(request)
        _set_state(group, "Stopped")
        return web.Response(status=204)

    async def container_logs(self, request: web.Request) -> web.Response:
        group = self._group_or_404(request)
        container = request.match_info["container"]
        names = [c["name"] for c in group["properties"]["containers"]]
        if container not in names:
            return arm_error(
                404,
                "ContainerNotFound",
                f"The container '{container}' is not found in container group "
                f"'{request.match_info['name']}'.",
            )
        text = self.logs.get((request.match_info["rg"], request.match_info["name"], container), "")
        tail = request.query.get("tail")
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = "".join(lines[-int(tail) :]) if int(tail) > 0 else ""
        return web.json_response({"content": text})

    def _group_or_404(self, request: web.Request) -> JSON:
        try:
            return self._group(request)
        except web.HTTPException as exc:
            raise _group_404_exc(request) from exc

    # -- long-running operations -----------------------------------------

    def _operation(self, apply: Any, failure: JSON | None = None) -> dict[str, str]:
        return self._operation_headers(self._new_operation(apply, failure))

    def _new_operation(self, apply: Any, failure: JSON | None = None) -> str:
        op_id = str(uuid.uuid4())
        self.operations[op_id] = Operation(time.monotonic() + self.operation_s, apply, failure)
        return op_id

    def _operation_headers(self, op_id: str) -> dict[str, str]:
        url = (
            f"{self.url}/subscriptions/{self.subscription}/providers/{PROVIDER}"
            f"/locations/{self.location}/operations/{op_id}?api-version={API_VERSION}"
        )
        headers = {"Azure-AsyncOperation": url}
        if self.poll_retry_after is not None:
            headers["Retry-After"] = self.poll_retry_after
        return headers

    async def operation(self, request: web.Request) -> web.Response:
        op = self.operations.get(request.match_info["op"])
        if op is None:
            raise web.HTTPNotFound()
        body: JSON = {"id": request.path, "name": request.match_info["op"], "startTime": now_iso()}
        if time.monotonic() < op.done_at:
            body["status"] = "InProgress"
            headers = {"Retry-After": self.poll_retry_after} if self.poll_retry_after else {}
            return web.json_response(body, headers=headers)
        if not op.finished:
            op.finished = True
            op.apply()
        if op.failure is not None:
            body.update(status="Failed", error=op.failure)
        else:
            body["status"] = "Succeeded"
        body["endTime"] = now_iso()
        return web.json_response(body)


def _instance_view(state: str, restart_count: int, image: str) -> JSON:
    started = now_iso()
    current: JSON = {"state": state, "startTime": started, "detailStatus": ""}
    if state == "Waiting":
        current["detailStatus"] = "CrashLoopBackOff: Back-off restarting failed container"
    if state == "Terminated":
        current.update(exitCode=0, finishTime=started, detailStatus="Completed")
    return {
        "restartCount": restart_count,
        "currentState": current,
        "events": [
            {
                "count": 1,
                "firstTimestamp": started,
                "lastTimestamp": started,
                "name": "Pulled",
                "message": f'Successfully pulled image "{image}"',
                "type": "Normal",
            },
            {
                "count": 1,
                "firstTimestamp": started,
                "lastTimestamp": started,
                "name": "Started",
                "message": "Started container",
                "type": "Normal",
            },
        ],
    }


def _set_state(group: JSON, state: str, *, restarted: bool = False) -> None:
    props = group["properties"]
    props["instanceView"] = {"state": state, "events": []}
    for container in props["containers"]:
        cprops = container["properties"]
        old = cprops.get("instanceView") or {}
        count = int(old.get("restartCount", 0))
        view = _instance_view("Terminated" if state == "Stopped" else state, count, cprops["image"])
        cprops["instanceView"] = view


def arm_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> web.Response:
    """ARM's error body."""
    return web.json_response(
        {"error": {"code": code, "message": message}}, status=status, headers=headers
    )


def _group_404(request: web.Request) -> web.Response:
    info = request.match_info
    return arm_error(
        404,
        "ResourceNotFound",
        f"The Resource '{PROVIDER}/containerGroups/{info['name']}' under resource group "
        f"'{info['rg']}' was not found. For more details please go to "
        "https://aka.ms/ARMResourceNotFoundFix",
    )


class _Invalid(Exception):
    """A template the fake cannot deploy: ARM's 400 with ``code``."""

    def __init__(self, message: str, code: str = "InvalidTemplate") -> None:
        super().__init__(message)
        self.code = code


def _evaluate(value: Any, parameters: dict[str, Any]) -> Any:
    """The template expressions ``chatops deploy`` sends: ``[parameters('X')]``,
    ``[base64(parameters('X'))]``, and ``[[`` for a literal ``[``; nothing else."""
    if isinstance(value, dict):
        return {k: _evaluate(v, parameters) for k, v in value.items()}
    if isinstance(value, list):
        return [_evaluate(v, parameters) for v in value]
    if not isinstance(value, str) or not value.startswith("["):
        return value
    if value.startswith("[["):
        return value[1:]
    match = _PARAMETER.match(value)
    if match is None or bool(match.group(1)) != bool(match.group(3)):
        raise _Invalid(f"The template expression '{value[:60]}' is not faked.")
    if match.group(2) not in parameters:
        raise _Invalid(f"The template parameter '{match.group(2)}' is not declared.")
    result = str(parameters[match.group(2)])
    return base64.b64encode(result.encode()).decode() if match.group(1) else result


class ArmErrorResponse(Exception):
    """Raised by a handler to answer with ARM's error body."""

    def __init__(self, response: web.Response) -> None:
        super().__init__(response.status)
        self.response = response


def _group_404_exc(request: web.Request) -> ArmErrorResponse:
    return ArmErrorResponse(_group_404(request))
