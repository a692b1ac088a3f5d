"""What tracing costs: chatops-bot against a plain discord.py bot, same fake Discord, same stream.

Run as ``python tests/bench/bench_overhead.py [--quick] [--json PATH]``; prints a
table and ratios against the plain bot, asserts nothing (issue 9, items 6 and 7).

Each variant is its own process (``overhead_child.py``), so its CPU time, peak RSS
and start-up are its own and tracer-provider globals never mix. This process
runs the protocol-level fake Discord and the users; the OTLP receiver, when a
variant needs one, is a third process, so decoding spans is charged to no bot.

Per variant: a probe message sent as the process starts (answered once the
gateway is READY and the GUILD_CREATEs are in), a warm-up, then the stream at
concurrency 1 (one user, each message after the previous reply) and 32 (32
users doing the same at once). Latency runs from the fake dispatching
MESSAGE_CREATE to the fake receiving the reply's POST; CPU is the bot process's
user+system time over each measured phase (all its threads, so the span export
thread counts) divided by the messages.

The variants of a round are started one after another, each warmed up and its
warm-up's spans flushed, and then measured together: each phase's stream goes to
them in turns (``--slices``, 8 per bot and phase; each turn's order drawn at
random, seeded by the round and the variants), so a slower minute of this shared machine falls on
every variant alike instead of on whichever ran in it. Run one after another, the
same code's ratio moved by up to 0.3x between runs (docs/development.md). Spans
are flushed as the bot flushes them (a full batch, or its 1 s timer, which may
fire in another bot's turn); at the end of a phase each bot is told to flush what
it holds (SIGHUP, ``overhead_child.py``) before its CPU time, read around the whole
phase (idle time between turns included), is taken. Each user's first reply of a
turn, after the bot sat idle, is kept out of the latency percentiles. Ratios are
comparable between runs of the same variants: the idle time between a bot's turns
grows with their number.

``--instructions`` runs each bot under valgrind's callgrind and also counts the
instructions it executes over each measured phase (user space, every thread, idle
time between turns included): a
count that does not move with whatever else the machine is doing, unlike CPU
time. It leaves out the kernel's share (system calls), and the bot runs 20-50x
slower meanwhile: the flush interval is stretched by ``CALLGRIND_SLOWDOWN`` (unless
the variant sets its own), so a flush carries as many spans as at full speed and
the cost per message of a POST is not inflated 30-fold.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Coroutine
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from bot.sandbox import FakeDiscord  # noqa: E402
from bot.sandbox.state import JSON  # noqa: E402

CHILD = Path(__file__).with_name("overhead_child.py")
T = TypeVar("T")
STREAM = ["!ping", "!about", "!roll 2d6", "!roll d20"]
USERS = 32
REPLY_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0
WARMUP_MIN_S = 1.5
CALLGRIND_SLOWDOWN = 30  # about how much slower a bot runs under callgrind
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# A phase's stream is sent to the bots in turns, this many per bot (``measure``).
SLICES = 8

# name: (child variant, needs an OTLP receiver, SQLite store, extra environment)
VARIANTS: dict[str, tuple[str, bool, bool, dict[str, str]]] = {
    "plain discord.py": ("plain", False, False, {}),
    # The same plain bot again (A/A): its ratio to the first is what the machine's noise
    # alone moves a ratio by in this run.
    "plain discord.py, again": ("plain", False, False, {}),
    "chatops, OTLP": ("chatops", True, False, {}),
    "chatops, SQLite store": ("chatops", False, True, {}),
    "chatops, no exporter": ("chatops", False, False, {}),
    "chatops, OTLP, tail 1 in 10": ("chatops", True, False, {"TAIL_SAMPLE_OK_ONE_IN": "10"}),
    "chatops, OTLP + store": ("chatops", True, True, {}),
    # Everything as OTLP, but nothing flushed while measured: what the flush itself costs.
    "chatops, OTLP, no flush": (
        "chatops",
        True,
        False,
        {
            "OTEL_BSP_SCHEDULE_DELAY": "3600000",
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "1000000",
            "OTEL_BSP_MAX_QUEUE_SIZE": "1000000",
            "BENCH_NEVER_FLUSH": "1",  # nor when the benchmark asks (``Running.flush``)
        },
    ),
    "chatops, OTLP, always_off": ("chatops", True, False, {"OTEL_TRACES_SAMPLER": "always_off"}),
    "chatops, OTEL_SDK_DISABLED": ("chatops", True, False, {"OTEL_SDK_DISABLED": "true"}),
}
SCALE_VARIANTS = ["plain discord.py", "chatops, OTLP"]


class BenchFake(FakeDiscord):
    """The sandbox fake, timing each reply's POST against its message's dispatch."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self._waiting: dict[int, asyncio.Future[float]] = {}

    def _bot_message_event(self, message: JSON, event: str) -> None:
        now = time.perf_counter()
        ref = (message.get("message_reference") or {}).get("message_id")
        if event == "MESSAGE_CREATE" and ref is not None:
            fut = self._waiting.pop(int(ref), None)
            if fut is not None and not fut.done():
                fut.set_result(now)
        super()._bot_message_event(message, event)

    async def timed(
        self, content: str, user: tuple[JSON, int], timeout: float = REPLY_TIMEOUT_S
    ) -> float:
        """Send ``content``; seconds from dispatch to the reply's POST (inf if none came)."""
        fut: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        author, channel_id = user
        started = time.perf_counter()
        message = self.send_message(content, author=author, channel_id=channel_id)
        self._waiting[int(message["id"])] = fut
        try:
            return await asyncio.wait_for(fut, timeout) - started
        except TimeoutError:
            self._waiting.pop(int(message["id"]), None)
            return float("inf")


@dataclass
class Phase:
    messages: int = 0
    seconds: float = 0.0
    cpu_s: float = 0.0
    instructions: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    # Each user's first reply of a turn, after the bot sat idle while the others had
    # theirs: kept out of the percentiles, which would otherwise depend on how many
    # turns and variants a run has (8 of 800 replies at one user, enough to set the
    # p99; 256 of 2,400 at 32 users).
    first_ms: list[float] = field(default_factory=list)

    @property
    def missing(self) -> int:
        return sum(1 for x in self.latencies_ms + self.first_ms if x == float("inf"))

    @property
    def cpu_ms_per_message(self) -> float:
        return self.cpu_s / self.messages * 1000 if self.messages else float("nan")

    @property
    def minstr_per_message(self) -> float:
        """Millions of instructions per message (``--instructions`` only)."""
        return self.instructions / self.messages / 1e6 if self.messages else float("nan")

    @property
    def rate(self) -> float:
        return self.messages / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        done = sorted(self.latencies_ms)
        return done[min(len(done) - 1, int(q * len(done)))] if done else float("nan")


@dataclass
class Result:
    name: str
    first_reply_s: float = float("nan")
    on_ready_s: float = float("nan")
    c1: Phase = field(default_factory=Phase)
    cN: Phase = field(default_factory=Phase)
    peak_rss_mb: float = 0.0
    spans: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def cpu_ms_per_message(self) -> float:
        total = self.c1.messages + self.cN.messages
        return (self.c1.cpu_s + self.cN.cpu_s) / total * 1000 if total else float("nan")

    @property
    def minstr_per_message(self) -> float:
        total = self.c1.messages + self.cN.messages
        both = self.c1.instructions + self.cN.instructions
        return both / total / 1e6 if total else float("nan")


def pooled(name: str, rounds: list[Result]) -> Result:
    """One row from several rounds: phases pooled, start-up and RSS the median round's."""

    def pool(phases: list[Phase]) -> Phase:
        return Phase(
            messages=sum(p.messages for p in phases),
            seconds=sum(p.seconds for p in phases),
            cpu_s=sum(p.cpu_s for p in phases),
            instructions=sum(p.instructions for p in phases),
            latencies_ms=[x for p in phases for x in p.latencies_ms],
            first_ms=[x for p in phases for x in p.first_ms],
        )

    return Result(
        name,
        first_reply_s=statistics.median(r.first_reply_s for r in rounds),
        on_ready_s=statistics.median(r.on_ready_s for r in rounds),
        c1=pool([r.c1 for r in rounds]),
        cN=pool([r.cN for r in rounds]),
        peak_rss_mb=statistics.median(r.peak_rss_mb for r in rounds),
        spans=None if rounds[0].spans is None else sum(r.spans or 0 for r in rounds),
        notes=[n for r in rounds for n in r.notes],
    )


def cpu_seconds(pid: int) -> float:
    """User + system time of the whole process (every thread, live or ended)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


class Callgrind:
    """Instruction counts of a bot started under callgrind, phase by phase.

    The bot starts with instrumentation off (start-up runs ~5x slower instead of
    ~30x); ``callgrind_control`` turns it on for a phase and dumps the count after.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir

    def wrap(self, args: list[str]) -> list[str]:
        return [
            "valgrind",
            "--tool=callgrind",
            "--instr-atstart=no",
            "--quiet",
            f"--callgrind-out-file={self.out_dir}/cg.%p",
            *args,
        ]

    async def _control(self, pid: int, *flags: str) -> None:
        proc = await asyncio.create_subprocess_exec(
            "callgrind_control",
            *flags,
            str(pid),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        await asyncio.wait_for(proc.wait(), 120)

    async def start(self, pid: int) -> None:
        await self._control(pid, "--instr=on")
        await self._control(pid, "--zero")

    async def stop(self, pid: int) -> int:
        """Instructions since ``start``; instrumentation off again."""
        before = set(self.out_dir.glob(f"cg.{pid}.*"))
        await self._control(pid, "--dump")
        await self._control(pid, "--instr=off")
        (dump,) = set(self.out_dir.glob(f"cg.{pid}.*")) - before
        for line in dump.read_text(errors="replace").splitlines():
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
        raise RuntimeError(f"no instruction total in {dump}")


def peak_rss_mb(pid: int) -> float:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:  # it exited
        return float("nan")
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This environment without anything that configures the bot or OpenTelemetry."""
    prefixes = (
        *("OTEL_", "HONEYCOMB_", "DISCORD_", "SPAN_STORE", "FLAGS_", "COMMANDS_FILE"),
        "BENCH_",  # the benchmark's own switches, set per variant only
    )
    env = {k: v for k, v in os.environ.items() if not k.upper().startswith(prefixes)}
    env["PYTHONPATH"] = str(REPO)
    return env | extra


@contextlib.asynccontextmanager
async def otlp_receiver(enabled: bool) -> Any:
    """An OTLP receiver process for one variant; yields (endpoint, span counter)."""
    if not enabled:
        yield None, None
        return
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(CHILD),
        "otlp",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env=child_env({}),
    )
    assert proc.stdout is not None and proc.stdin is not None
    port = int((await asyncio.wait_for(proc.stdout.readline(), START_TIMEOUT_S)).decode())
    counted: list[int] = []
    try:
        yield f"http://127.0.0.1:{port}", counted
    finally:
        proc.stdin.close()
        with contextlib.suppress(TimeoutError, ValueError):
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            counted.append(int(line.split()[1]))
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        await proc.wait()


async def run_slice(
    fake: BenchFake, users: list[tuple[JSON, int]], per_user: int, offset: int, phase: Phase
) -> None:
    """Each user sends ``per_user`` messages, each after the previous reply, all at once."""

    async def user(index: int, author: tuple[JSON, int]) -> None:
        for n in range(per_user):
            content = STREAM[(offset + index + n * len(users)) % len(STREAM)]
            latency_ms = await fake.timed(content, author) * 1000
            (phase.latencies_ms if n else phase.first_ms).append(latency_ms)

    wall0 = time.perf_counter()
    await asyncio.gather(*(user(i, a) for i, a in enumerate(users)))
    phase.seconds += time.perf_counter() - wall0
    phase.messages += per_user * len(users)


@contextlib.asynccontextmanager
async def sampled(pid: int, out: Path | None) -> Any:
    """py-spy samples ``pid`` meanwhile (collapsed stacks to ``out``), if ``out`` is set."""
    if out is None:
        yield
        return
    spy = await asyncio.create_subprocess_exec(
        str(Path(sys.executable).with_name("py-spy")),
        *("record", "--pid", str(pid), "--rate", "1000", "--format", "raw"),
        *("--output", str(out), "--nonblocking", "--threads"),
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        yield
    finally:
        spy.send_signal(signal.SIGINT)
        await asyncio.wait_for(spy.wait(), 30)


@contextlib.asynccontextmanager
async def called(pid: int, written: Path | None, out: Path) -> Any:
    """The bot cProfiles its event-loop thread meanwhile, if it was started to write its
    pstats to ``written`` (``BENCH_CALLS_OUT``); they are moved to ``out``."""
    if written is None:
        yield
        return
    with contextlib.suppress(FileNotFoundError):
        os.remove(written)
    os.kill(pid, signal.SIGUSR1)
    try:
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):  # it exited: the run says so
            os.kill(pid, signal.SIGUSR2)
        for _ in range(600):
            if await asyncio.to_thread(os.path.exists, written):
                os.replace(written, out)
                break
            await asyncio.sleep(0.05)


@dataclass
class Running:
    """One variant's bot, started, ready and warmed up, with its own fake Discord."""

    result: Result
    fake: BenchFake
    users: list[tuple[JSON, int]]
    pid: int
    lines: asyncio.Queue[bytes]  # what the bot prints after ``ready``
    gone: asyncio.Event  # its output ended: the process exited
    profile: Path | None = None  # py-spy output
    calls: Path | None = None  # cProfile output (a phase's name is added)

    async def flush(self) -> None:
        """Have the bot flush the spans it holds now (``overhead_child.py``, SIGHUP)."""
        self.check()
        os.kill(self.pid, signal.SIGHUP)
        while (await self.unless_gone(self.lines.get())).strip() != b"flushed":
            pass

    def check(self) -> None:
        if self.gone.is_set():
            raise RuntimeError(f"{self.result.name}: the bot exited while measured")

    async def unless_gone(self, work: Coroutine[Any, Any, T]) -> T:
        """``work``'s result; a clear error as soon as the bot exits instead."""
        task = asyncio.ensure_future(work)
        exited = asyncio.ensure_future(self.gone.wait())
        try:
            await asyncio.wait(
                {task, exited}, timeout=START_TIMEOUT_S * 10, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            exited.cancel()
        if not task.done():
            task.cancel()
            self.check()
            raise TimeoutError(f"{self.result.name}: no answer from the bot")
        return task.result()


@contextlib.asynccontextmanager
async def started(
    name: str,
    *,
    guilds: int,
    warmup: int,
    workdir: Path,
    profile: Path | None = None,
    counter: Callgrind | None = None,
    calls: Path | None = None,
) -> Any:
    """Yields the variant's ``Running`` bot; on leaving, stops it and fills in the rest."""
    kind, otlp, store, extra = VARIANTS[name]
    result = Result(name)
    # Each user talks in a guild of their own: discord.py queues the replies to one
    # channel behind one rate-limit bucket, and eight users flooding one channel is
    # not a load Discord would accept anyway (5 messages per 5 s per channel).
    async with (
        BenchFake(guild_count=max(guilds, USERS)) as fake,
        otlp_receiver(otlp) as (endpoint, counted),
    ):
        authors = [fake.user] + [fake.add_user(f"user{i}") for i in range(1, USERS)]
        users = [(a, int(g.channels[0]["id"])) for a, g in zip(authors, fake.guilds, strict=False)]
        args = [sys.executable, str(CHILD), "bot", kind, fake.api_base, fake.gateway_url]
        if endpoint:
            args += ["--otlp", endpoint]
        db = workdir / f"spans-{uuid.uuid4().hex}.db"
        if store:
            args += ["--store", str(db)]
        env = child_env(extra)
        if calls:
            env["BENCH_CALLS_OUT"] = str(calls)
        if counter:
            args = counter.wrap(args)
            delay = int(env.get("OTEL_BSP_SCHEDULE_DELAY", "1000"))
            env.setdefault("OTEL_BSP_SCHEDULE_DELAY", str(delay * CALLGRIND_SLOWDOWN))
            # and the tail sampler's "slow" too, or every message would be kept as slow
            env.setdefault("TAIL_SAMPLE_SLOW_MS", str(1000 * CALLGRIND_SLOWDOWN))
        started_at = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
            env=env,
        )
        assert proc.stdout is not None
        stdout = proc.stdout

        lines: asyncio.Queue[bytes] = asyncio.Queue()
        gone = asyncio.Event()
        ready = asyncio.get_running_loop().create_future()

        async def read_lines() -> None:
            while line := await stdout.readline():
                if line.strip() == b"ready" and not ready.done():
                    ready.set_result(time.perf_counter() - started_at)
                else:
                    lines.put_nowait(line)
            gone.set()
            if not ready.done():
                ready.set_exception(RuntimeError(f"{name}: the bot exited before on_ready"))

        reader = asyncio.create_task(read_lines())
        try:
            # Held by the fake until the session is ready, so this is start to first reply.
            await fake.timed("!about", users[0], timeout=START_TIMEOUT_S)
            result.first_reply_s = time.perf_counter() - started_at
            result.on_ready_s = await asyncio.wait_for(ready, START_TIMEOUT_S)
            # Warm up for longer than the pipeline's 1 s flush interval, so one-time
            # costs (the exporter's first connection) are not charged to the stream.
            warm_until = time.perf_counter() + WARMUP_MIN_S
            while warmup and time.perf_counter() < warm_until:
                await run_slice(fake, users[:1], warmup, 0, Phase())
            bot = Running(result, fake, users, proc.pid, lines, gone, profile, calls)
            await bot.flush()  # the warm-up's spans are not the stream's
            yield bot
            result.peak_rss_mb = peak_rss_mb(proc.pid)
        finally:
            reader.cancel()
            with contextlib.suppress(ProcessLookupError):
                proc.terminate()
            try:
                await asyncio.wait_for(proc.wait(), 15)
            except TimeoutError:
                result.notes.append("did not exit within 15 s of SIGTERM")
                proc.kill()
                await proc.wait()
            if proc.returncode not in (0, -15):
                result.notes.append(f"exit code {proc.returncode}")
    if counted:
        result.spans = counted[0]
    if store and db.exists():
        with contextlib.closing(sqlite3.connect(db)) as conn:
            result.spans = int(conn.execute("SELECT count(*) FROM spans").fetchone()[0])
    missing = result.c1.missing + result.cN.missing
    if missing:
        result.notes.append(f"{missing} message(s) got no reply within {REPLY_TIMEOUT_S:.0f} s")


async def measure(
    bots: list[Running],
    phase: str,
    *,
    users: int,
    per_user: int,
    slices: int,
    order: random.Random,
    counter: Callgrind | None = None,
) -> None:
    """One phase (``c1`` or ``cN``) of every bot, their streams interleaved in ``slices``.

    Every bot is running throughout; each slice sends the next part of the stream
    to each bot in turn, in an order drawn from ``order`` for each slice, so a
    minute in which the machine is slower falls on all of them alike. At the end
    of the phase each bot is told to flush (``Running.flush``); then its CPU time,
    read around the whole phase (idle time between turns included), is taken.
    """
    async with contextlib.AsyncExitStack() as stack:
        for bot in bots:
            if bot.profile is not None:
                await stack.enter_async_context(
                    sampled(bot.pid, bot.profile.with_name(f"{bot.profile.name}.{phase}.txt"))
                )
            if bot.calls is not None:
                out = bot.calls.with_name(f"{bot.calls.name}.{phase}.pstats")
                await stack.enter_async_context(called(bot.pid, bot.calls, out))
        if counter:
            for bot in bots:
                await counter.start(bot.pid)
        cpu0 = [cpu_seconds(bot.pid) for bot in bots]
        sizes = [per_user // slices + (1 if n < per_user % slices else 0) for n in range(slices)]
        offset = 0
        for size in sizes:
            for bot in order.sample(bots, len(bots)):
                await bot.unless_gone(
                    run_slice(bot.fake, bot.users[:users], size, offset, getattr(bot.result, phase))
                )
            offset += size * users
        for bot in bots:  # what the last turns left waiting is the phase's too
            await bot.flush()
        for bot, before in zip(bots, cpu0, strict=True):
            getattr(bot.result, phase).cpu_s = cpu_seconds(bot.pid) - before
        if counter:
            for bot in bots:
                getattr(bot.result, phase).instructions = await counter.stop(bot.pid)


async def run_round(
    names: list[str],
    *,
    guilds: int,
    warmup: int,
    c1: int,
    cN: int,
    slices: int,
    workdir: Path,
    profile: Path | None = None,
    counter: Callgrind | None = None,
    calls: Path | None = None,
    label: str = "",
) -> list[Result]:
    """Every variant of ``names`` started, then measured side by side."""
    async with contextlib.AsyncExitStack() as stack:
        bots: list[Running] = []
        for name in names:
            slug = name.replace(" ", "").replace(",", "-") + label
            print(f"  {name}: starting ...", flush=True)
            bots.append(
                await stack.enter_async_context(
                    started(
                        name,
                        guilds=guilds,
                        warmup=warmup,
                        workdir=workdir,
                        profile=profile / slug if profile else None,
                        counter=counter,
                        calls=calls / slug if calls else None,
                    )
                )
            )
        print("  measuring ...", flush=True)
        order = random.Random(f"{label}{names}")  # the same turns for the same run
        await measure(bots, "c1", users=1, per_user=c1, slices=slices, order=order, counter=counter)
        if cN:
            await measure(
                bots,
                "cN",
                users=USERS,
                per_user=cN // USERS,
                slices=slices,
                order=order,
                counter=counter,
            )
    return [bot.result for bot in bots]


# -- printing -------------------------------------------------------------------


def _f(value: float, digits: int = 1) -> str:
    return f"{value:.{digits}f}" if value == value and value != float("inf") else "-"


def table(results: list[Result]) -> str:
    head = (
        f"{'variant':<28} {'ready s':>7} {'reply s':>7} {'rps c1':>7} {'rps cN':>7} "
        f"{'p50 c1':>6} {'p99 c1':>6} {'p50 cN':>6} {'p99 cN':>6} {'CPU ms/msg':>10} "
        f"{'RSS MB':>6} {'spans':>7}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<28} {_f(r.on_ready_s, 2):>7} {_f(r.first_reply_s, 2):>7} "
            f"{_f(r.c1.rate, 0):>7} {_f(r.cN.rate, 0):>7} "
            f"{_f(r.c1.pct(0.5), 2):>6} {_f(r.c1.pct(0.99), 2):>6} "
            f"{_f(r.cN.pct(0.5), 2):>6} {_f(r.cN.pct(0.99), 2):>6} "
            f"{_f(r.cpu_ms_per_message, 3):>10} {_f(r.peak_rss_mb, 0):>6} "
            f"{'-' if r.spans is None else r.spans:>7}"
        )
    return "\n".join(lines)


def ratios(results: list[Result]) -> str:
    base = results[0]
    head = (
        f"{'against the plain bot':<28} {'CPU/msg':>8} {'CPU c1':>7} {'CPU cN':>7} "
        f"{'+p99 c1 ms':>10} {'+p99 cN ms':>10} "
        f"{'+RSS MB':>8} {'+ready s':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results[1:]:
        lines.append(
            f"{r.name:<28} {r.cpu_ms_per_message / base.cpu_ms_per_message:>7.2f}x "
            f"{r.c1.cpu_ms_per_message / base.c1.cpu_ms_per_message:>6.2f}x "
            f"{r.cN.cpu_ms_per_message / base.cN.cpu_ms_per_message:>6.2f}x "
            f"{r.c1.pct(0.99) - base.c1.pct(0.99):>+10.2f} "
            f"{r.cN.pct(0.99) - base.cN.pct(0.99):>+10.2f} "
            f"{r.peak_rss_mb - base.peak_rss_mb:>+8.1f} {r.on_ready_s - base.on_ready_s:>+8.2f}"
        )
    return "\n".join(lines)


def _spread(values: list[float], fmt: str) -> str:
    """Median [min-max] of per-round values."""
    if not values:
        return "-"
    low, mid, high = min(values), statistics.median(values), max(values)
    return f"{mid:{fmt}} [{low:{fmt}}-{high:{fmt}}]"


def spread_table(by_name: dict[str, list[Result]]) -> str:
    """Each round's ratio to the plain bot of the same round: median and spread."""
    names = list(by_name)
    base_rounds = by_name[names[0]]
    head = (
        f"{'per round, against plain':<28} {'CPU c1':>18} {'CPU cN':>18} "
        f"{'+p99 c1 ms':>20} {'+RSS MB':>18}"
    )
    lines = [head, "-" * len(head)]
    for name in names[1:]:
        pairs = list(zip(by_name[name], base_rounds, strict=False))
        c1 = [r.c1.cpu_ms_per_message / b.c1.cpu_ms_per_message for r, b in pairs]
        cn = [r.cN.cpu_ms_per_message / b.cN.cpu_ms_per_message for r, b in pairs]
        p99 = [r.c1.pct(0.99) - b.c1.pct(0.99) for r, b in pairs]
        rss = [r.peak_rss_mb - b.peak_rss_mb for r, b in pairs]
        lines.append(
            f"{name:<28} {_spread(c1, '.2f'):>18} {_spread(cn, '.2f'):>18} "
            f"{_spread(p99, '+.2f'):>20} {_spread(rss, '+.1f'):>18}"
        )
    return "\n".join(lines)


def instruction_table(results: list[Result]) -> str:
    base = results[0]
    head = (
        f"{'instructions (callgrind)':<28} {'M/msg':>7} {'M c1':>7} {'M cN':>7} "
        f"{'ratio':>7} {'ratio c1':>8} {'ratio cN':>8}"
    )
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<28} {r.minstr_per_message:>7.3f} {r.c1.minstr_per_message:>7.3f} "
            f"{r.cN.minstr_per_message:>7.3f} "
            f"{r.minstr_per_message / base.minstr_per_message:>6.2f}x "
            f"{r.c1.minstr_per_message / base.c1.minstr_per_message:>7.2f}x "
            f"{r.cN.minstr_per_message / base.cN.minstr_per_message:>7.2f}x"
        )
    return "\n".join(lines)


def scale_table(results: list[Result], guilds: int) -> str:
    head = f"{f'READY with {guilds:,} guilds':<28} {'ready s':>7} {'reply s':>7} {'RSS MB':>7}"
    lines = [head, "-" * len(head)]
    for r in results:
        lines.append(
            f"{r.name:<28} {_f(r.on_ready_s, 2):>7} {_f(r.first_reply_s, 2):>7} "
            f"{_f(r.peak_rss_mb, 0):>7}"
        )
    return "\n".join(lines)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages: about 30 s")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", action="append", help="run only this variant (repeatable)")
    parser.add_argument(
        "--profile", type=Path, help="record each variant with py-spy into this directory"
    )
    parser.add_argument(
        "--calls",
        type=Path,
        help="cProfile each bot's event-loop thread into this directory (exact call counts)",
    )
    parser.add_argument("--no-scale", action="store_true", help="skip the 2,500-guild READY")
    parser.add_argument("--rounds", type=int, help="rounds over all variants (3, quick: 1)")
    parser.add_argument(
        "--slices",
        type=int,
        default=SLICES,
        help=f"each phase's stream split into this many turns per bot ({SLICES})",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="run each bot under callgrind and count its instructions per message",
    )
    args = parser.parse_args()
    warmup, c1, cN = (50, 300, 800) if args.quick else (100, 800, 2400)
    if not 1 <= args.slices <= cN // USERS // 2:
        parser.error(f"--slices must be from 1 to {cN // USERS // 2} (two messages a user a turn)")
    rounds = args.rounds or (1 if args.quick else 3)
    scale_guilds, scale_messages = 2500, 200
    always = ("plain discord.py", "plain discord.py, again")
    names = [n for n in VARIANTS if not args.only or n in args.only or n in always]
    from telemetry.store_sqlite import UNAVAILABLE  # the store's rows: in C, or why not

    writer = "C batch writer" if UNAVAILABLE is None else f"executemany ({UNAVAILABLE})"
    print(
        f"stream {STREAM}; {rounds} round(s) of {c1} messages at concurrency 1 and {cN} at "
        f"{USERS}; "
        f"{os.cpu_count()} CPUs; Python {sys.version.split()[0]}; store rows: {writer}",
        flush=True,
    )
    by_name: dict[str, list[Result]] = {name: [] for name in names}
    scale: list[Result] = []
    for directory in (args.calls, args.profile):
        if directory:
            directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-overhead-") as tmp:
        # All variants of a round run at once and are measured side by side (``measure``);
        # each round starts them afresh, so start-up and peak RSS are counted per round.
        for round_no in range(rounds):
            print(f"round {round_no + 1}:", flush=True)
            found = await run_round(
                names,
                guilds=1,
                warmup=warmup,
                c1=c1,
                cN=cN,
                slices=args.slices,
                workdir=Path(tmp),
                profile=args.profile,
                counter=Callgrind(Path(tmp)) if args.instructions else None,
                calls=args.calls,
                label=f"-{round_no + 1}",
            )
            for result in found:
                by_name[result.name].append(result)
        for name in [] if args.no_scale else SCALE_VARIANTS:
            print(f"{name}, {scale_guilds:,} guilds:", flush=True)
            scale += await run_round(
                [name],
                guilds=scale_guilds,
                warmup=0,
                c1=scale_messages,
                cN=0,
                slices=1,
                workdir=Path(tmp),
            )
    results = [pooled(name, rs) for name, rs in by_name.items()]
    print()
    print("latency in ms from MESSAGE_CREATE dispatched to the reply's POST received;")
    print("ready = process start to on_ready, reply = process start to the first reply\n")
    print(table(results))
    print()
    print(ratios(results))
    if rounds > 1:
        print()
        print(spread_table(by_name))
    if args.instructions:
        print()
        print(instruction_table(results))
    print()
    print(scale_table(scale, scale_guilds))
    for r in results + scale:
        for note in r.notes:
            print(f"note: {r.name}: {note}")
    if args.json:
        args.json.write_text(json.dumps([asdict(r) for r in results + scale], indent=1))


if __name__ == "__main__":
    asyncio.run(main())
