"""The CircleCI API v2 fake ships with the package, beside the BuildKite one."""

from bot.sandbox.fakes.circleci_api import (
    TOKEN,
    FakeCircleCI,
    cancelled_run,
    failed_run,
    job,
    passed_run,
    pipeline,
    stamp,
    workflow,
)

__all__ = [
    "TOKEN",
    "FakeCircleCI",
    "cancelled_run",
    "failed_run",
    "job",
    "passed_run",
    "pipeline",
    "stamp",
    "workflow",
]
