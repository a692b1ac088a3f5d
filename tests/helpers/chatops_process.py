"""Running ``chatops`` as a separate process, as an operator or a container would."""

from __future__ import annotations

import asyncio
import os
import resource
import socket
import sys
from collections.abc import Mapping

TOKEN = "MTIz.secret-token-never-logged.abc"
_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def child_env(**extra: str) -> dict[str, str]:
    """The test's environment without any tracing or Discord settings, plus ``extra``."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("OTEL_", "HONEYCOMB_", "DISCORD_", "CIRCLECI_", "BUILDKITE_"))
    }
    env.update(SPAN_STORE="off", HEALTH_PORT="0", FLAGS_FILE="/nonexistent/flags.json")
    env.update(extra)
    return env


async def start(
    env: Mapping[str, str], *args: str, max_open_files: int | None = None
) -> asyncio.subprocess.Process:
    """``python -m bot ARGS`` (default ``run``) with ``env``, output captured.

    ``max_open_files`` lowers the child's ``RLIMIT_NOFILE`` (a container's is often 1,024).
    """

    def limit_files() -> None:
        if max_open_files is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (max_open_files, max_open_files))

    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *(args or ("run",)),
        env=dict(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=limit_files if max_open_files is not None else None,
    )


def closed_port() -> int:
    """A loopback port nothing listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def run_ci(cwd: object, env: Mapping[str, str], *args: str) -> tuple[int, bytes, bytes]:
    """``python -m bot ci ARGS`` as one CI step runs it: only PATH and ``env`` inherited."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "ci",
        *args,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": _ROOT, **env},
        cwd=str(cwd),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out, err
