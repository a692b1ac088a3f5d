"""The one way a command calls an external API.

Every call gets the same treatment, so no command can forget one: a named span
(``catfact.fetch``) whose children are the aiohttp client spans of each attempt,
explicit connect and total timeouts, one retry with backoff for idempotent
requests that hit a connection error or a 5xx, a cap on the bytes read, JSON
errors turned into a short sentence, the typing indicator when the call is slow,
client-side pacing for hosts that ask for it, and redirects followed only within
the origin the call was sent to (``redirects``). Failures are raised as
``ApiError`` (a ``UserFacingError``): the error mapper replies with the message
and the trace id and records ``app.outcome=error``.

Tracing headers are sent only when the caller asks (``propagate=True``, for the
operator's own endpoints); public APIs get none.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
import discord
from discord.ext import commands
from opentelemetry.trace import Span
from opentelemetry.util.types import AttributeValue
from yarl import URL

from commands.toolkit.failures import UserFacingError
from commands.toolkit.redirects import MAX_REDIRECTS, Hop, location_of, next_hop
from commands.toolkit.token_bucket import TokenBucket
from telemetry import schema
from telemetry.propagation import propagate_trace
from telemetry.schema import Outcome
from telemetry.tracer import module_tracer

log = logging.getLogger(__name__)
tracer = module_tracer(__name__)

DEFAULT_TIMEOUT = aiohttp.ClientTimeout(total=8.0, connect=3.0)
MAX_RESPONSE_BYTES = 1024 * 1024
RETRY_BACKOFF_S = 0.25
TYPING_AFTER_S = 0.5
CHUNK_BYTES = 64 * 1024
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
JSON_ACCEPT = "application/json"


class ApiError(UserFacingError):
    """An external call failed; the message is short and safe to show.

    ``status`` and ``payload`` (the decoded error body, if any) let a command
    turn a documented error into its own reply.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        payload: Any = None,
        outcome: Outcome = Outcome.ERROR,
    ) -> None:
        super().__init__(message, outcome)
        self.status = status
        self.payload = payload


@dataclass(frozen=True)
class ApiResponse:
    """A response read in full (within the size cap)."""

    status: int
    body: bytes
    content_type: str
    label: str

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        """The decoded body; an unreadable one is the API's failure, not the user's."""
        try:
            return json.loads(self.body)
        except ValueError:
            raise ApiError(
                f"The {self.label} sent an answer I couldn't read.", status=self.status
            ) from None


@dataclass(frozen=True)
class _Attempt:
    status: int
    body: bytes
    content_type: str


class ApiClient:
    """Wraps the bot's shared aiohttp session; injected into every cog that calls out."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        *,
        user_agent: str,
        timeout: aiohttp.ClientTimeout = DEFAULT_TIMEOUT,
        max_bytes: int = MAX_RESPONSE_BYTES,
        retry_backoff_s: float = RETRY_BACKOFF_S,
        typing_after_s: float | None = TYPING_AFTER_S,
        limiters: Mapping[str, TokenBucket] | None = None,
    ) -> None:
        self.session = session
        self.user_agent = user_agent
        self.timeout = timeout
        self.max_bytes = max_bytes
        self.retry_backoff_s = retry_backoff_s
        self.typing_after_s = typing_after_s
        self.limiters = dict(limiters or {})

    async def get_json(
        self,
        span_name: str,
        url: str,
        *,
        label: str,
        params: Mapping[str, str] | None = None,
        ctx: commands.Context[Any] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
    ) -> Any:
        """GET ``url`` and decode JSON; any non-2xx answer raises ``ApiError``."""
        response = await self.request(
            span_name, "GET", url, label=label, params=params, ctx=ctx, timeout=timeout
        )
        return response.json()

    async def request(
        self,
        span_name: str,
        method: str,
        url: str | URL,
        *,
        label: str,
        params: Mapping[str, str] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        accept: str = JSON_ACCEPT,
        ctx: commands.Context[Any] | None = None,
        timeout: aiohttp.ClientTimeout | None = None,
        propagate: bool = False,
        allow: Collection[int] = (),
        attributes: Mapping[str, AttributeValue] | None = None,
    ) -> ApiResponse:
        """One call under a span named ``span_name``.

        A status outside 2xx raises ``ApiError`` unless listed in ``allow``
        (for documented errors the command explains itself, such as Scryfall's
        404 "no match"). ``label`` names the API in replies ("cat-fact API").
        A ``URL`` is sent as it is; a string is parsed (and normalised) by yarl.
        """
        method = method.upper()
        timeout = timeout or self.timeout
        target = url if isinstance(url, URL) else URL(url)
        typing = self._typing_later(ctx)
        try:
            with tracer.start_as_current_span(
                span_name,
                attributes={
                    schema.API_NAME: label,
                    schema.API_HOST: target.host or "",
                    schema.API_TIMEOUT_S: float(timeout.total or 0),
                    schema.API_TRACE_PROPAGATED: propagate,
                    **(attributes or {}),
                },
            ) as span:
                sent = {"User-Agent": self.user_agent, "Accept": accept, **(headers or {})}
                with propagate_trace() if propagate else contextlib.nullcontext():
                    attempt = await self._with_retry(
                        span, method, target, label, params, json_body, sent, timeout
                    )
                response = ApiResponse(attempt.status, attempt.body, attempt.content_type, label)
                span.set_attribute(schema.API_STATUS, response.status)
                span.set_attribute(schema.API_RESPONSE_BYTES, len(response.body))
                if not response.ok and response.status not in allow:
                    raise ApiError(
                        f"The {label} answered {response.status}.",
                        status=response.status,
                        payload=_maybe_json(response.body),
                    )
                return response
        finally:
            await _stop(typing)

    async def _with_retry(
        self,
        span: Span,
        method: str,
        url: URL,
        label: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> _Attempt:
        """At most two attempts; each is its own HTTP span under ``span``."""
        retryable = method in IDEMPOTENT_METHODS
        limiter = self.limiters.get(str(url.origin()))
        waited = 0.0
        for number in (1, 2):
            span.set_attribute(schema.API_ATTEMPTS, number)
            if limiter is not None:
                waited += await limiter.acquire()
                span.set_attribute(schema.API_RATE_LIMIT_WAIT_MS, round(waited * 1000, 1))
            last = number == 2 or not retryable
            try:
                attempt = await self._once(method, url, label, params, json_body, headers, timeout)
            except TimeoutError:
                # Checked first: aiohttp's timeouts are also connection errors.
                raise ApiError(f"The {label} timed out.") from None
            except aiohttp.ClientConnectionError as exc:
                if last:
                    raise ApiError(f"I couldn't reach the {label}.") from exc
                log.info("%s: %s; retrying once", label, type(exc).__name__)
            except aiohttp.ClientError as exc:
                raise ApiError(f"The {label} failed ({type(exc).__name__}).") from exc
            else:
                if attempt.status < 500 or last:
                    return attempt
                log.info("%s answered %d; retrying once", label, attempt.status)
            await asyncio.sleep(self.retry_backoff_s * (1 + random.random() / 2))
        raise AssertionError("unreachable")  # pragma: no cover

    async def _once(
        self,
        method: str,
        url: URL,
        label: str,
        params: Mapping[str, str] | None,
        json_body: Any,
        headers: Mapping[str, str],
        timeout: aiohttp.ClientTimeout,
    ) -> _Attempt:
        """One HTTP exchange, following redirects only within ``url``'s origin (``redirects``).

        ``timeout.total`` bounds the exchange with its redirects, as it would
        bound aiohttp's own redirect following.
        """
        hop = Hop(url, method, json_body)
        async with asyncio.timeout(timeout.total):
            for _ in range(MAX_REDIRECTS + 1):
                async with self.session.request(
                    hop.method,
                    hop.url,
                    params=params,
                    json=hop.body,
                    headers=headers,
                    timeout=timeout,
                    allow_redirects=False,
                ) as response:
                    location = location_of(response.status, response.headers)
                    if location is None:
                        return await self._read(response, label)
                hop = next_hop(url, hop, response.status, location, label)
                params = None  # the location carries its own query
        raise ApiError(f"The {label} redirected too many times.")

    async def _read(self, response: aiohttp.ClientResponse, label: str) -> _Attempt:
        """The body, read in chunks and stopping past the cap."""
        too_big = ApiError(f"The {label} sent too large an answer.", status=response.status)
        if (response.content_length or 0) > self.max_bytes:
            raise too_big
        body = bytearray()
        async for chunk in response.content.iter_chunked(CHUNK_BYTES):
            body += chunk
            if len(body) > self.max_bytes:
                raise too_big
        return _Attempt(response.status, bytes(body), response.content_type)

    def _typing_later(self, ctx: commands.Context[Any] | None) -> asyncio.Task[None] | None:
        """Show "typing…" only if the call is still running after ``typing_after_s``.

        Started before the named span, so its POST is a sibling of the call in
        the trace rather than time charged to the API.
        """
        if ctx is None or self.typing_after_s is None:
            return None
        if ctx.interaction is not None:
            # Slash commands show "thinking…" by deferring (bot/command_tree.py); for an
            # interaction ``ctx.typing()`` would defer a second time and fail.
            return None
        return asyncio.create_task(_typing_after(ctx, self.typing_after_s))


async def _typing_after(ctx: commands.Context[Any], delay: float) -> None:
    await asyncio.sleep(delay)
    try:
        async with ctx.typing():
            await asyncio.Event().wait()  # until cancelled when the call ends
    except discord.HTTPException as exc:
        log.debug("typing indicator failed: %s", exc)


async def _stop(task: asyncio.Task[None] | None) -> None:
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def _maybe_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except ValueError:
        return None
