"""Attribute names and outcomes of the span schema (docs/telemetry.md, "The span schema").

Every attribute name used on a span lives here, so the schema can be read in one
place and a query written against it never chases a typo.
"""

from __future__ import annotations

import re
from enum import StrEnum

from opentelemetry.semconv.attributes.server_attributes import SERVER_ADDRESS

# Root span of a received message.
MESSAGE_ID = "discord.message.id"
CHANNEL_ID = "discord.channel.id"
GUILD_ID = "discord.guild.id"
GUILD_NAME = "discord.guild.name"
AUTHOR_ID = "discord.author.id"
AUTHOR_NAME = "discord.author.name"
SHARD_ID = "discord.shard.id"
INTERACTION_ID = "discord.interaction.id"
INTERACTION_TYPE = "discord.interaction.type"
# The button or select a component interaction came from.
COMPONENT_ID = "discord.component.custom_id"

COMMAND = "app.command"
COMMAND_ARGS = "app.command.args"
OUTCOME = "app.outcome"
RESPONSE = "app.response"
ERROR_TYPE = "app.error.type"
ERROR_MESSAGE = "app.error.message"

# Feature flags (OTel feature-flag semantic conventions).
FLAG_KEY = "feature_flag.key"
FLAG_VARIANT = "feature_flag.result.variant"
FLAG_VALUE = "feature_flag.result.value"
FLAG_REASON = "feature_flag.result.reason"
FLAG_PROVIDER = "feature_flag.provider.name"
FLAG_CONTEXT_ID = "feature_flag.context.id"
# Set on an evaluation span when the provider could not evaluate (semconv ``error.type``).
FLAG_ERROR_TYPE = "error.type"
FLAG_ERROR_MESSAGE = "error.message"

# Azure.
AZURE_OPERATION = "app.azure.operation"
AZURE_RESOURCE_ID = "app.azure.resource_id"

# Span names.
ROOT_SPAN_MESSAGE = "message"
ROOT_SPAN_COMMAND_PREFIX = "command "
# Discord's rate limits (bot/ratelimit_spans.py, telemetry/http_spans.py): a wait's
# bucket, seconds, scope (user, shared, global from a 429; "bucket" for discord.py's
# own pacing) and whether it was global; the bucket's state on each HTTP span.
RATELIMIT_BUCKET = "discord.ratelimit.bucket"
RATELIMIT_RETRY_AFTER = "discord.ratelimit.retry_after"
RATELIMIT_SCOPE = "discord.ratelimit.scope"
RATELIMIT_GLOBAL = "discord.ratelimit.global"
RATELIMIT_REMAINING = "discord.ratelimit.remaining"
RATELIMIT_LIMIT = "discord.ratelimit.limit"
# On a discord.send span, which is also its request: that request's own duration (the
# span's covers the whole send, rate-limit waits and earlier attempts included).
HTTP_ATTEMPT_MS = "app.http.attempt_ms"
# The gateway over time (bot/gateway_health.py), on each discord.gateway.health span.
GATEWAY_LATENCY_MS = "discord.gateway.latency_ms"
GATEWAY_DISCONNECTS = "discord.gateway.disconnects"
GATEWAY_RESUMES = "discord.gateway.resumes"
GATEWAY_SESSIONS = "discord.gateway.sessions"
GATEWAY_INVALID_SESSIONS = "discord.gateway.invalid_sessions"
SEND_SPAN = "discord.send"
DEFER_SPAN = "discord.defer"
ROOT_SPAN_INTERACTION = "interaction"
ROOT_SPAN_AUTOCOMPLETE_PREFIX = "autocomplete "
ROOT_SPAN_COMPONENT_PREFIX = "component "
FLAG_SPAN_PREFIX = "feature_flag.evaluate "

# Limits on recorded text.
RESPONSE_MAX_CHARS = 1024
ARGS_MAX_CHARS = 256

# Fields copied from the root onto every descendant by the trace-fields processor.
TRACE_FIELDS = (COMMAND, GUILD_ID, AUTHOR_ID)


class Outcome(StrEnum):
    """What happened to a message, from the operator's point of view.

    Only ERROR means the bot or a dependency broke; the others are what the
    user caused, and keep the span status unset.
    """

    OK = "ok"
    ERROR = "error"
    DENIED = "denied"
    BAD_INPUT = "bad_input"
    UNKNOWN_COMMAND = "unknown_command"
    COOLDOWN = "cooldown"
    IGNORED = "ignored"
    # An autocomplete request answered: not a command run, so per-command counts and
    # latencies leave it out; sampled like ok. One that fails is an error like any other.
    AUTOCOMPLETE = "autocomplete"


# Outcomes the tail sampler keeps 1 in N (the rest are always kept).
SAMPLED_OUTCOMES = frozenset({Outcome.OK.value, Outcome.AUTOCOMPLETE.value})


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def readable(text: str) -> str:
    """``text`` with lone surrogates replaced by U+FFFD, so it can be encoded as UTF-8.

    Discord's JSON may carry an escaped lone surrogate (``\\ud800``); Python keeps
    it in the string, and every UTF-8 encoder then fails on it: the OTLP exporter
    drops the attribute with a logged traceback, the SQLite store the whole batch.
    """
    return text if text.isascii() else _LONE_SURROGATE.sub("\ufffd", text)


def truncate(text: str, limit: int) -> str:
    """Cut ``text`` to ``limit`` characters, marking the cut with an ellipsis; always encodable."""
    text = readable(text)
    if len(text) <= limit:
        return text
    return text[: limit - 1] + "\u2026"


# Pipeline tracing (issues 7, 8): OTel CI/CD and VCS semantic conventions.
CICD_PIPELINE_NAME = "cicd.pipeline.name"
CICD_PIPELINE_RUN_ID = "cicd.pipeline.run.id"
CICD_PIPELINE_RUN_URL = "cicd.pipeline.run.url.full"
CICD_PIPELINE_RESULT = "cicd.pipeline.result"
CICD_TASK_NAME = "cicd.pipeline.task.name"
CICD_TASK_RUN_ID = "cicd.pipeline.task.run.id"
CICD_TASK_RUN_URL = "cicd.pipeline.task.run.url.full"
CICD_TASK_RUN_RESULT = "cicd.pipeline.task.run.result"
CICD_WORKER_NAME = "cicd.worker.name"
VCS_PROVIDER_NAME = "vcs.provider.name"
VCS_REPOSITORY_NAME = "vcs.repository.name"
VCS_REPOSITORY_URL = "vcs.repository.url.full"
VCS_REF_HEAD_NAME = "vcs.ref.head.name"
VCS_REF_HEAD_REVISION = "vcs.ref.head.revision"
VCS_REF_HEAD_TYPE = "vcs.ref.head.type"
VCS_CHANGE_ID = "vcs.change.id"
VCS_CHANGE_TITLE = "vcs.change.title"
VCS_REF_BASE_NAME = "vcs.ref.base.name"
VCS_OWNER_NAME = "vcs.owner.name"
PROCESS_EXIT_CODE = "process.exit.code"
PROCESS_COMMAND_LINE = "process.command_line"
# Ours, where no convention exists: the CI system, its own status word, queue time.
CI_SYSTEM = "app.ci.system"
CI_PROJECT = "app.ci.project"
CI_PIPELINE_NUMBER = "app.ci.pipeline.number"
CI_STATUS = "app.ci.status"
CI_EVENT_TYPE = "app.ci.event.type"
CI_QUEUE_WAIT_MS = "app.ci.queue.wait_ms"
CI_TRACE_ID = "app.ci.trace_id"
CI_JOB_NAME = "app.ci.job.name"
CI_JOB_NUMBER = "app.ci.job.number"
CI_JOB_RETRIED = "app.ci.job.retried"
CI_JOB_SOFT_FAILED = "app.ci.job.soft_failed"
CI_STEP_KEY = "app.ci.step.key"
CI_WORKER_VERSION = "app.ci.worker.version"
CI_BUILD_AUTHOR = "app.ci.build.author"
CI_COMMIT_MESSAGE = "app.ci.commit.message"
CI_META_DATA_PREFIX = "app.ci.meta_data."
# A pull request's author and source repository: the VCS conventions name the change
# (vcs.change.id, vcs.change.title) and its refs, but neither of these.
VCS_CHANGE_AUTHOR = "app.vcs.change.author"
VCS_CHANGE_REPOSITORY = "app.vcs.change.repository"
# CircleCI's own names, as circleci-hook set them: boards and saved queries built on
# that tool keep working beside the cicd.* names.
CIRCLECI_ORGANIZATION_NAME = "circleci.organization.name"
CIRCLECI_PROJECT_SLUG = "circleci.project.slug"
CIRCLECI_PIPELINE_NUMBER = "circleci.pipeline.number"
CIRCLECI_JOB_NUMBER = "circleci.job.number"
CIRCLECI_COMMIT_AUTHOR = "circleci.commit.author"
CIRCLECI_COMMIT_SUBJECT = "circleci.commit.subject"
COMMAND_LINE_MAX_CHARS = 1024

# External API calls (issue 3): on the named span around each call.
API_NAME = "app.api.name"
API_HOST = SERVER_ADDRESS  # the stable convention, as on HTTP spans
API_ATTEMPTS = "app.api.attempts"
API_STATUS = "app.api.status_code"
API_RESPONSE_BYTES = "app.api.response_bytes"
API_RATE_LIMIT_WAIT_MS = "app.api.rate_limit_wait_ms"
API_TIMEOUT_S = "app.api.timeout_s"
API_TRACE_PROPAGATED = "app.api.trace_propagated"
HTTP_COMMAND = "app.http_command.name"

# Azure chat-ops and deploy (issues 5, 7). AZURE_OPERATION is the ARM action the call
# needs (what a role must allow); AZURE_RESOURCE_ID the container group's ARM id.
AZURE_SPAN_PREFIX = "azure.containerinstance."
AZURE_RESOURCE_GROUP = "app.azure.resource_group"
AZURE_STATUS = "app.azure.status_code"
AZURE_ERROR_CODE = "app.azure.error.code"
AZURE_RETRY_AFTER_S = "app.azure.retry_after_s"
AZURE_TIMEOUT_S = "app.azure.timeout_s"
AZURE_CONFIRMATION = "app.azure.confirmation"
DEPLOY_SPAN = "deploy"
DEPLOY_PHASE_PREFIX = "deploy."
DEPLOY_IMAGE = "app.deploy.image"
DEPLOY_PREVIOUS_IMAGE = "app.deploy.previous_image"
DEPLOY_CONTAINER = "app.deploy.container"
DEPLOY_RESULT = "app.deploy.result"

# The ops loop (issue 19, docs/ops-loop.md): the audit channel, two-person approval,
# ``!trace``, the container watch.
AUDIT_SPAN = "audit.post"
AUDIT_ENTRIES = "app.audit.entries"
AUDIT_DROPPED = "app.audit.dropped"
AUDIT_ACTION = "app.audit.action"
AZURE_APPROVER_ID = "app.azure.approver.id"
AZURE_APPROVER_NAME = "app.azure.approver.name"
AZURE_TWO_PERSON = "app.azure.two_person"
TRACE_LOOKUP = "app.trace.lookup"
WATCH_SPAN = "azure.watch.poll"
WATCH_GROUPS = "app.watch.groups"
WATCH_TRANSITIONS = "app.watch.transitions"
WATCH_BASELINE = "app.watch.baseline"
WATCH_BACKOFF_S = "app.watch.backoff_s"
ALERT_NAME = "app.alert.name"
ALERT_STATUS = "app.alert.status"
ALERT_EDITED = "app.alert.edited"
HOOK_DELIVERY_ID = "app.hook.delivery_id"
HOOK_STATUS = "app.hook.status_code"
DEPLOY_REVIEW_SPAN = "deploy.review"
DEPLOY_VERSION = "app.deploy.version"
DEPLOY_VERDICT = "app.deploy.verdict"
DEPLOY_REGRESSIONS = "app.deploy.regressions"
DEPLOY_REVIEW_SOURCE = "app.deploy.review_source"
