"""``chatops doctor``: is this configuration going to work? One check per thing that can be wrong.

Each check asks the service itself, the way the bot will: Discord's ``/users/@me``
(the token) and ``/applications/@me`` (the Message Content intent, from the
application flags), Honeycomb's ``/1/auth`` (the key, its team and environment),
an empty OTLP export (the collector is there and takes the headers), ARM's
permissions API for each resource group (which ``!aci`` actions the credential's
roles allow), the flag and commands files as the bot reads them, and the ports.
A failure carries the fix. Each secret goes only to its own service, and no
check prints one.
"""

from __future__ import annotations

import asyncio
import errno
import fnmatch
import socket
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

import aiohttp

from bot.config import HONEYCOMB_TEAM_HEADER, Settings

if TYPE_CHECKING:
    from bot.azure_wiring import AzureOptions

Status = Literal["ok", "warn", "fail", "skip"]
TIMEOUT = aiohttp.ClientTimeout(total=8, connect=4)
CREDENTIAL_TIMEOUT_S = 20.0

# Discord's application flags: the Message Content intent, and its form for bots in
# fewer than 100 servers (the portal's toggle sets one or the other).
GATEWAY_MESSAGE_CONTENT = 1 << 18
GATEWAY_MESSAGE_CONTENT_LIMITED = 1 << 19

PERMISSIONS_API_VERSION = "2022-04-01"
ACI = "Microsoft.ContainerInstance/containerGroups"
# What each ``!aci`` action (and ``chatops deploy``) asks ARM for (docs/azure.md).
ACI_ACTIONS: dict[str, str] = {
    "list, status": f"{ACI}/read",
    "logs": f"{ACI}/containers/logs/read",
    "start": f"{ACI}/start/action",
    "stop": f"{ACI}/stop/action",
    "restart": f"{ACI}/restart/action",
    "deploy": f"{ACI}/write",
}
ROLE_FIX = (
    "give the bot's identity Contributor (or a role with {aci}/*) on resource group {rg}: "
    "az role assignment create --assignee <principal id> --role Contributor "
    "--scope /subscriptions/{sub}/resourceGroups/{rg}"
)


@dataclass(frozen=True)
class Check:
    """One row of the report: what was checked, how it went, and what to do if it failed."""

    name: str
    status: Status
    detail: str
    fix: str = ""

    def to_json(self) -> dict[str, str]:
        return asdict(self)


def broken(checks: list[Check]) -> bool:
    return any(check.status == "fail" for check in checks)


async def run_checks(settings: Settings, azure: AzureOptions | None = None) -> list[Check]:
    """Every check; network checks run at once, each bounded by ``TIMEOUT``."""
    async with aiohttp.ClientSession(timeout=TIMEOUT) as http:
        groups = await asyncio.gather(
            _discord(settings, http),
            _honeycomb(settings, http),
            _otlp(settings, http),
            _azure(settings, http, azure),
        )
    local = [
        *_flags(settings),
        *_commands_file(settings),
        *_span_store(settings),
        *_ports(settings),
    ]
    return [check for group in groups for check in group] + local


# -- Discord --------------------------------------------------------------


async def _discord(settings: Settings, http: aiohttp.ClientSession) -> list[Check]:
    token = settings.discord_token.get_secret_value().strip() if settings.discord_token else ""
    if not token:
        fix = "set DISCORD_TOKEN (Developer Portal > your application > Bot > Reset Token)"
        return [Check("discord token", "fail", "DISCORD_TOKEN is not set", fix)]
    base = settings.discord_api_base.rstrip("/")
    headers = {"Authorization": f"Bot {token}"}
    try:
        status, me = await _get_json(http, f"{base}/users/@me", headers)
        if status == 401:
            fix = "reset the token in the Developer Portal (Bot > Reset Token), set DISCORD_TOKEN"
            return [Check("discord token", "fail", "Discord rejected DISCORD_TOKEN (401)", fix)]
        if status != 200:
            return [Check("discord token", "fail", f"{base}/users/@me answered {status}")]
        token_ok = Check(
            "discord token", "ok", f"logged in as {me.get('username')} ({me.get('id')})"
        )
        status, app = await _get_json(http, f"{base}/applications/@me", headers)
    except (aiohttp.ClientError, TimeoutError) as exc:
        fix = "check the network, or DISCORD_API_BASE"
        return [Check("discord token", "fail", f"cannot reach {base}: {_reason(exc)}", fix)]
    if status != 200:
        return [token_ok, Check("message content intent", "warn", f"/applications/@me: {status}")]
    flags = int(app.get("flags") or 0)
    if flags & (GATEWAY_MESSAGE_CONTENT | GATEWAY_MESSAGE_CONTENT_LIMITED):
        intent = Check("message content intent", "ok", "enabled")
    else:
        intent = Check(
            "message content intent",
            "fail",
            "not enabled: the bot would be refused at connect (bang-commands need it)",
            "Developer Portal > your application > Bot > Privileged Gateway Intents > "
            "Message Content Intent: on",
        )
    return [token_ok, intent]


# -- Honeycomb and OTLP ---------------------------------------------------


async def _honeycomb(settings: Settings, http: aiohttp.ClientSession) -> list[Check]:
    keys = [("HONEYCOMB_API_KEY", settings.honeycomb_api_key, "events", "ingest")]
    if settings.honeycomb_marker_key is not None:
        keys.append(("HONEYCOMB_MARKER_KEY", settings.honeycomb_marker_key, "markers", "markers"))
    if settings.honeycomb_api_key is None:
        keys = keys[1:]
        if not keys:
            return [Check("honeycomb key", "skip", "HONEYCOMB_API_KEY is not set")]
    url = f"{settings.honeycomb_api_url.rstrip('/')}/1/auth"
    checks = []
    for setting, secret, access, what in keys:
        assert secret is not None
        name = f"honeycomb {setting.removeprefix('HONEYCOMB_').lower().replace('_', ' ')}"
        try:
            status, auth = await _get_json(
                http, url, {HONEYCOMB_TEAM_HEADER: secret.get_secret_value()}
            )
        except (aiohttp.ClientError, TimeoutError) as exc:
            checks.append(Check(name, "fail", f"cannot reach {url}: {_reason(exc)}"))
            continue
        if status in (401, 403):
            fix = f"create a key in Honeycomb (Environment settings > API Keys), set {setting}"
            checks.append(Check(name, "fail", f"Honeycomb rejected {setting} ({status})", fix))
            continue
        if status != 200:
            checks.append(Check(name, "fail", f"{url} answered {status}"))
            continue
        checks.append(_honeycomb_key(settings, name, setting, auth, access, what))
    return checks


def _honeycomb_key(
    settings: Settings, name: str, setting: str, auth: dict[str, Any], access: str, what: str
) -> Check:
    team = (auth.get("team") or {}).get("slug") or "?"
    environment = (auth.get("environment") or {}).get("slug") or ""
    where = f"team {team}, " + (f"environment {environment}" if environment else "Classic")
    if (auth.get("api_key_access") or {}).get(access) is False:
        fix = f"give the key the {what} permission in Honeycomb, or use another key"
        return Check(name, "fail", f"{where}: the key may not send {access}", fix)
    wanted_env = settings.honeycomb_environment
    if wanted_env and environment and wanted_env != environment:
        return Check(
            name,
            "fail",
            f"{where}, but HONEYCOMB_ENVIRONMENT is {wanted_env}: trace links would be wrong",
            f"set HONEYCOMB_ENVIRONMENT={environment}, or use a key of {wanted_env}",
        )
    if settings.honeycomb_team and settings.honeycomb_team != team:
        return Check(
            name,
            "fail",
            f"{where}, but HONEYCOMB_TEAM is {settings.honeycomb_team}",
            f"set HONEYCOMB_TEAM={team}",
        )
    return Check(name, "ok", f"{where}; dataset {settings.service_name}")


CERTIFICATE_FIX = (
    "set OTEL_EXPORTER_OTLP_CERTIFICATE to the CA bundle (PEM) that signed the collector's "
    "certificate, or unset it for a publicly trusted collector"
)


async def _otlp(settings: Settings, http: aiohttp.ClientSession) -> list[Check]:
    url = settings.otlp_traces_url
    if url is None:
        return [Check("otlp endpoint", "skip", "no OTLP export configured (local store only)")]
    context: ssl.SSLContext | bool = True
    certificate = settings.otlp_certificate
    if certificate is not None:
        try:
            context = ssl.create_default_context(cafile=str(certificate))
        except (OSError, ssl.SSLError) as exc:
            # The exporter would fail on every export; say which file, not a traceback.
            detail = f"OTLP certificate {certificate}: {_reason(exc)}"
            return [Check("otlp endpoint", "fail", detail, CERTIFICATE_FIX)]
    headers = {**settings.otlp_headers, "Content-Type": "application/x-protobuf"}
    try:
        # An empty ExportTraceServiceRequest: the collector answers as for real spans.
        async with http.post(url, data=b"", headers=headers, ssl=context) as response:
            status = response.status
    except aiohttp.ClientConnectorCertificateError as exc:
        trusted = f"OTEL_EXPORTER_OTLP_CERTIFICATE {certificate}" if certificate else "system CAs"
        detail = f"{url}: certificate not trusted ({trusted}): {_reason(exc)}"
        return [Check("otlp endpoint", "fail", detail, CERTIFICATE_FIX)]
    except (aiohttp.ClientError, TimeoutError, OSError) as exc:
        fix = "start the collector, or fix OTEL_EXPORTER_OTLP_ENDPOINT"
        return [Check("otlp endpoint", "fail", f"cannot reach {url}: {_reason(exc)}", fix)]
    if status in (401, 403):
        fix = "check OTEL_EXPORTER_OTLP_HEADERS (or HONEYCOMB_API_KEY)"
        return [Check("otlp endpoint", "fail", f"{url} refused the headers ({status})", fix)]
    if status >= 300:
        fix = "OTEL_EXPORTER_OTLP_ENDPOINT is the base URL; /v1/traces is appended"
        return [Check("otlp endpoint", "fail", f"{url} answered {status}", fix)]
    return [Check("otlp endpoint", "ok", f"{url} accepts exports")]


# -- Azure ----------------------------------------------------------------


async def _azure(
    settings: Settings, http: aiohttp.ClientSession, options: AzureOptions | None
) -> list[Check]:
    sub = settings.azure_subscription_id
    if not sub:
        return [Check("azure", "skip", "AZURE_SUBSCRIPTION_ID is not set: !aci is off")]
    endpoint = settings.azure_arm_endpoint.rstrip("/")
    if not endpoint.startswith("https://"):
        return [Check("azure credential", "fail", "AZURE_ARM_ENDPOINT is not https: no token sent")]
    credential, close = _credential(settings, options)
    try:
        # DefaultAzureCredential tries several sources in turn; bound the whole search.
        async with asyncio.timeout(CREDENTIAL_TIMEOUT_S):
            token = (await credential.get_token(f"{endpoint}/.default")).token
    except TimeoutError:
        fix = "az login, or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET"
        detail = f"no token within {CREDENTIAL_TIMEOUT_S:g} s"
        return [Check("azure credential", "fail", detail, fix)]
    except Exception as exc:
        fix = (
            "az login, or AZURE_CLIENT_ID/AZURE_TENANT_ID/AZURE_CLIENT_SECRET, "
            "or a managed identity"
        )
        return [Check("azure credential", "fail", f"no token: {_first_line(exc)}", fix)]
    finally:
        await close()
    checks = [Check("azure credential", "ok", f"token for {endpoint}")]
    context = _arm_tls(options)
    for rg in settings.azure_resource_group:
        url = (
            f"{endpoint}/subscriptions/{sub}/resourceGroups/{rg}/providers/"
            f"Microsoft.Authorization/permissions?api-version={PERMISSIONS_API_VERSION}"
        )
        fix = ROLE_FIX.format(aci=ACI, rg=rg, sub=sub)
        try:
            status, body = await _get_json(http, url, {"Authorization": f"Bearer {token}"}, context)
        except (aiohttp.ClientError, TimeoutError) as exc:
            checks.append(Check(f"azure {rg}", "fail", f"cannot reach ARM: {_reason(exc)}"))
            continue
        if status != 200:
            code = ((body or {}).get("error") or {}).get("code") or status
            checks.append(Check(f"azure {rg}", "fail", f"permissions not readable: {code}", fix))
            continue
        grants = list(body.get("value") or [])
        for action, operation in ACI_ACTIONS.items():
            if allowed(grants, operation):
                checks.append(Check(f"azure {rg}: aci {action}", "ok", operation))
            else:
                checks.append(Check(f"azure {rg}: aci {action}", "fail", f"no {operation}", fix))
    return checks


def allowed(grants: list[dict[str, Any]], operation: str) -> bool:
    """Whether one of the role grants allows ``operation`` (``actions`` minus ``notActions``,
    wildcards as ARM matches them, case-insensitive)."""

    def hit(patterns: list[str]) -> bool:
        return any(fnmatch.fnmatchcase(operation.lower(), p.lower()) for p in patterns)

    return any(
        hit(grant.get("actions") or []) and not hit(grant.get("notActions") or [])
        for grant in grants
    )


def _credential(
    settings: Settings, options: AzureOptions | None
) -> tuple[Any, Callable[[], Awaitable[None]]]:
    if options is not None and options.credential is not None:
        return options.credential, _nothing
    from azure.identity.aio import DefaultAzureCredential

    kwargs: dict[str, Any] = {}
    if settings.azure_authority_host:
        kwargs["authority"] = settings.azure_authority_host
    credential = DefaultAzureCredential(**kwargs)
    return credential, credential.close


def _arm_tls(options: AzureOptions | None) -> ssl.SSLContext | bool:
    """The system's trust, or the CA file a test names as azure-core's ``connection_verify``."""
    verify = (options.transport if options is not None else {}).get("connection_verify")
    if isinstance(verify, str):
        return ssl.create_default_context(cafile=verify)
    return True


async def _nothing() -> None:
    return None


# -- files and ports ------------------------------------------------------


def _flags(settings: Settings) -> list[Check]:
    provider = settings.flags_provider
    if provider == "none":
        return [Check("flags", "skip", "FLAGS_PROVIDER=none: permission flags deny")]
    if provider != "file":
        port = settings.flagd_port or (8013 if provider == "rpc" else 8015)
        reachable = _connects(settings.flagd_host, port)
        where = f"flagd at {settings.flagd_host}:{port}"
        if reachable:
            return [Check("flags", "ok", f"{where} accepts connections")]
        return [Check("flags", "fail", f"{where}: no answer", "start flagd, or FLAGD_HOST/PORT")]
    from commands.toolkit.flag_file import check_file

    path = settings.flags_file
    report = check_file(path)
    if not report.readable:
        fix = f"create {path} (example: flags.json, docs/flags.md) or set FLAGS_FILE"
        return [Check("flags file", "warn", f"{path}: {report.problems[0].message}", fix)]
    if report.errors:
        first = report.errors[0].text
        more = f" (+{len(report.errors) - 1} more)" if len(report.errors) > 1 else ""
        return [
            Check("flags file", "fail", f"{path}: {first}{more}", f"chatops flags check {path}")
        ]
    warned = f", {len(report.warnings)} warning(s)" if report.warnings else ""
    status: Status = "warn" if report.warnings else "ok"
    return [Check("flags file", status, f"{path}: {report.flag_count} flag(s){warned}")]


def _span_store(settings: Settings) -> list[Check]:
    """Whether the store's C access works here: its batch writer, and grouping for stats."""
    if settings.span_store_path is None:
        return [Check("span store writer", "skip", "no span store (SPAN_STORE=off)")]
    from telemetry.store_sqlite import UNAVAILABLE

    if UNAVAILABLE is None:
        return [
            Check("span store writer", "ok", "rows written and stats grouped in C, GIL released")
        ]
    return [
        Check(
            "span store writer",
            "warn",
            f"rows go through sqlite3's executemany, stats groups in Python: {UNAVAILABLE}",
            "run the bot on CPython 3.11 to 3.13 with its own sqlite3 module (the image does); "
            "the store then costs more CPU and memory under load (docs/development.md), and "
            "chatops stats over a million spans takes seconds",
        )
    ]


def _commands_file(settings: Settings) -> list[Check]:
    from commands.http_backed.commands_file import CommandsFileError, load_commands

    path = settings.commands_file
    if not path.exists():
        if "commands_file" in settings.model_fields_set:
            return [Check("commands file", "fail", f"{path} does not exist", "fix COMMANDS_FILE")]
        return [Check("commands file", "skip", f"no {path}: no HTTP-backed commands")]
    try:
        specs = load_commands(path)
    except CommandsFileError as exc:
        return [Check("commands file", "fail", str(exc), f"edit {path} (docs/commands.md)")]
    return [Check("commands file", "ok", f"{path}: {len(specs)} command(s)")]


def _ports(settings: Settings) -> list[Check]:
    ports = [("HEALTH_PORT", settings.health_port)]
    if settings.webhooks_apart and settings.webhook_port is not None:
        ports.append(("WEBHOOK_PORT", settings.webhook_port))
    checks = []
    for setting, port in ports:
        name = f"port {setting}"
        if port == 0:
            checks.append(Check(name, "skip", "0: a free port is picked at start"))
            continue
        problem = _bind_problem(port)
        if problem is None:
            checks.append(Check(name, "ok", f"{port} is free"))
        else:
            fix = f"stop what holds {port} (is the bot already running?) or set {setting}"
            checks.append(Check(name, "fail", f"{port}: {problem}", fix))
    return checks


def _bind_problem(port: int) -> str | None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("0.0.0.0", port))
        except OSError as exc:
            return "in use" if exc.errno == errno.EADDRINUSE else (exc.strerror or str(exc))
    return None


def _connects(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


# -- helpers --------------------------------------------------------------


async def _get_json(
    http: aiohttp.ClientSession,
    url: str,
    headers: dict[str, str],
    ssl_context: ssl.SSLContext | bool = True,
) -> tuple[int, dict[str, Any]]:
    async with http.get(url, headers=headers, ssl=ssl_context) as response:
        try:
            body = await response.json(content_type=None)
        except ValueError:
            body = None
        return response.status, body if isinstance(body, dict) else {}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
