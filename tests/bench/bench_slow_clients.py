"""Slow clients against ``chatops run``'s HTTP port: does the bot stay on Discord?

Run as ``python tests/bench/bench_slow_clients.py [--idle 1000] [--heads 0] [--bodies 0]``;
prints numbers, asserts nothing (issue 15, "The health and webhook port can take the
bot off Discord").

``chatops run`` runs as a child process with ``RLIMIT_NOFILE`` lowered (1,024 by
default, as in a container), connected to the protocol-level fake Discord that
this process runs, with the CircleCI receiver mounted on ``HEALTH_PORT`` (or on
``--webhook-port``). This process then opens the slow connections
(``tests/helpers/raw_http.py``): ``--idle`` send nothing, ``--heads`` half a
request head, ``--bodies`` a complete head announcing 200 KiB and then 1 KiB of
it; with ``--sustain`` each one the bot closes is opened again, as a
persistent attacker would. Every second, for ``--seconds``, a prober asks ``/healthz`` on a new
connection and a new user says ``!ping`` in the fake; their latencies, the
child's open file descriptors and RSS, its log size and how many of the slow
connections the bot has closed are printed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import resource
import signal
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bot.sandbox import FakeDiscord  # noqa: E402
from tests.helpers.chatops_process import TOKEN, child_env, closed_port  # noqa: E402
from tests.helpers.raw_http import RawConnection, slow_client, status_of  # noqa: E402

PROBE_TIMEOUT_S = 5.0


@dataclass
class Samples:
    healthz_ms: list[float] = field(default_factory=list)
    healthz_failed: int = 0
    ping_ms: list[float] = field(default_factory=list)
    ping_lost: int = 0
    fds: list[int] = field(default_factory=list)
    rss_mb: list[float] = field(default_factory=list)


def proc_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def proc_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def healthz(port: int) -> float | None:
    """Milliseconds for ``GET /healthz`` on a fresh connection, None if it failed."""
    started = time.monotonic()
    try:
        status = await status_of(port, "/healthz", within=PROBE_TIMEOUT_S)
    except (OSError, TimeoutError):
        return None
    return (time.monotonic() - started) * 1000 if status == 200 else None


async def run(args: argparse.Namespace, log_path: Path, log_file: IO[bytes]) -> None:
    port = closed_port()
    env = child_env(
        DISCORD_TOKEN=TOKEN,
        HEALTH_PORT=str(port),
        CIRCLECI_HOOK_SECRET="bench-secret",
        # configured, so that half-sent bodies wait in the receiver (nothing is exported)
        CIRCLECI_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port()}",
        **({"WEBHOOK_PORT": str(args.webhook_port)} if args.webhook_port else {}),
    )

    def limit_files() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (args.nofile, args.nofile))

    async with FakeDiscord(heartbeat_interval_ms=5_000) as fake:
        env["DISCORD_API_BASE"] = fake.api_base
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            env=env,
            stdout=log_file,
            stderr=log_file,
            preexec_fn=limit_files,
        )
        try:
            await fake.wait_ready(timeout=30)
            while await healthz(port) is None:  # noqa: ASYNC110 (the child offers no event)
                await asyncio.sleep(0.1)
            baseline_fds = proc_fds(process.pid)
            opened_at = time.monotonic()
            slow: list[tuple[str, RawConnection]] = []
            for kind, count in (("idle", args.idle), ("head", args.heads), ("body", args.bodies)):
                for _ in range(count):
                    with contextlib.suppress(OSError):
                        slow.append((kind, await slow_client(port, kind)))
            connected = len(slow)
            shed = 0
            opening_s = time.monotonic() - opened_at
            samples = Samples()
            timeline: list[str] = []
            for second in range(args.seconds):
                tick = time.monotonic()
                took = await healthz(port)
                if took is None:
                    samples.healthz_failed += 1
                else:
                    samples.healthz_ms.append(took)
                sent = time.monotonic()
                answer = await fake.say(
                    "!ping", author=fake.add_user(f"user{second}"), timeout=PROBE_TIMEOUT_S
                )
                if answer is None:
                    samples.ping_lost += 1
                else:
                    samples.ping_ms.append((time.monotonic() - sent) * 1000)
                fds = proc_fds(process.pid)
                samples.fds.append(fds)
                samples.rss_mb.append(proc_rss_mb(process.pid))
                closed = [i for i, (_, connection) in enumerate(slow) if not connection.is_open()]
                shed += len(closed)
                timeline.append(
                    f"{second:>4}s  healthz {_ms(took):>9}  ping {_ms(_last(samples, answer)):>9}"
                    f"  fds {fds:>5}  slow closed by the bot so far {shed:>6}"
                )
                for i in closed:
                    kind, connection = slow[i]
                    connection.close()
                    if args.sustain:
                        with contextlib.suppress(OSError):
                            slow[i] = (kind, await slow_client(port, kind))
                if not args.sustain:
                    slow = [pair for i, pair in enumerate(slow) if i not in set(closed)]
                await asyncio.sleep(max(0.0, 1.0 - (time.monotonic() - tick)))
        finally:
            process.send_signal(signal.SIGTERM)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(process.wait(), 30)
            if process.returncode is None:
                process.kill()
    log_bytes = log_path.stat().st_size  # noqa: ASYNC240 (after the measurement)
    print(
        f"slow connections: {args.idle} idle, {args.heads} half-sent heads, "
        f"{args.bodies} half-sent bodies ({connected} connected in {opening_s:.1f}s"
        f"{', reopened when closed' if args.sustain else ''}); "
        f"RLIMIT_NOFILE {args.nofile}"
    )
    print("\n".join(timeline))
    print(
        f"healthz: {len(samples.healthz_ms)} answered, {samples.healthz_failed} failed; "
        f"p50 {_stat(samples.healthz_ms, 50)} ms, max {_stat(samples.healthz_ms, 100)} ms"
    )
    print(
        f"!ping:   {len(samples.ping_ms)} answered, {samples.ping_lost} lost; "
        f"p50 {_stat(samples.ping_ms, 50)} ms, max {_stat(samples.ping_ms, 100)} ms"
    )
    print(
        f"bot fds: {baseline_fds} before, max {max(samples.fds, default=0)}; "
        f"RSS max {max(samples.rss_mb, default=0):.0f} MB; log {log_bytes} bytes "
        f"({log_path}); exit code {process.returncode}"
    )


def _last(samples: Samples, answer: object) -> float | None:
    return samples.ping_ms[-1] if answer is not None and samples.ping_ms else None


def _ms(value: float | None) -> str:
    return "failed" if value is None else f"{value:.1f} ms"


def _stat(values: list[float], pct: int) -> str:
    if not values:
        return "-"
    if pct == 100:
        return f"{max(values):.1f}"
    return f"{statistics.quantiles(values, n=100)[pct - 1]:.1f}" if len(values) > 1 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=int, default=1000, help="connections that send nothing")
    parser.add_argument("--heads", type=int, default=0, help="half-sent request heads")
    parser.add_argument("--bodies", type=int, default=0, help="half-sent request bodies")
    parser.add_argument("--seconds", type=int, default=20, help="how long to probe")
    parser.add_argument("--nofile", type=int, default=1024, help="the bot's RLIMIT_NOFILE")
    parser.add_argument(
        "--sustain", action="store_true", help="reopen each slow connection the bot closes"
    )
    parser.add_argument("--webhook-port", type=int, default=0, help="serve webhooks apart")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = args.idle + args.heads + args.bodies + 256
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))
    log_path = Path(tempfile.mkdtemp(prefix="chatops-slow-")) / "bot.log"
    with log_path.open("wb") as log_file:
        asyncio.run(run(args, log_path, log_file))


if __name__ == "__main__":
    main()
