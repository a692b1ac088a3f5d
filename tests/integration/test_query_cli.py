"""The query verbs through click: tables, JSON, one-line errors, markers and board as code
against a local fake of Honeycomb's API."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from aiohttp import web
from click.testing import CliRunner

from bot.cli.main import cli
from bot.cli.output import PIPED_WIDTH
from bot.cli.query_verbs import COMMANDS
from telemetry.honeycomb_payloads import KINDS, template
from telemetry.store import SpanStore
from tests.fakes.honeycomb_api import FakeHoneycomb
from tests.helpers.stored_spans import root, store_tracer

for command in COMMANDS:
    cli.add_command(command)

KEY = "config-key-123"
INFRA = Path(__file__).resolve().parents[2] / "infra" / "honeycomb"


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    path = tmp_path / "spans.db"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SPAN_STORE", str(path))
    monkeypatch.setenv("OTEL_SERVICE_NAME", "chatops-test")
    for name in ("HONEYCOMB_MARKER_KEY", "HONEYCOMB_CONFIG_KEY"):
        monkeypatch.delenv(name, raising=False)
    return path


@pytest.fixture
def filled(env: Path) -> str:
    now = time.time_ns()
    with store_tracer(env) as tracer:
        for i in range(1, 21):
            root(tracer, "ping", start_ns=now - i * 10**9, duration_ms=i)
        return root(tracer, "mtg", start_ns=now - 10**9, duration_ms=250, outcome="error")


@pytest.fixture
def honeycomb(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHoneycomb]:
    """The fake served on a loopback port from its own thread and event loop."""
    fake = FakeHoneycomb(key=KEY)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runner = web.AppRunner(fake.app())
    import asyncio

    loop = asyncio.new_event_loop()
    loop.run_until_complete(runner.setup())
    loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    monkeypatch.setenv("HONEYCOMB_API_URL", f"http://127.0.0.1:{port}")
    yield fake
    asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(5)


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(cli, list(args))
    assert not isinstance(result.exception, Exception) or isinstance(
        result.exception, SystemExit
    ), result.exception
    return result.exit_code, result.stdout, result.stderr


def test_stats_json_reports_p95_per_command(filled: str) -> None:
    code, out, _ = run("stats", "--since", "1h", "--format", "json")
    rows = {r["group"]: r for r in json.loads(out)}
    assert code == 0
    assert rows["ping"]["count"] == 20 and rows["ping"]["p95_ms"] == pytest.approx(19)
    assert rows["mtg"]["error_rate"] == 1.0


def test_stats_table_names_each_command(filled: str) -> None:
    code, out, _ = run("stats", "--by", "command", "--where", "app.command=ping")
    assert code == 0 and "ping" in out and "mtg" not in out


def test_stats_table_shows_the_busiest_groups_and_says_how_many_are_left_out(
    filled: str,
) -> None:
    code, out, _ = run("stats", "--top", "1")
    assert code == 0 and "ping" in out and "mtg" not in out
    assert "the 1 busiest of 2 groups" in out
    code, out, _ = run("stats", "--top", "1", "--format", "json")
    assert code == 0 and len(json.loads(out)) == 2  # JSON always has every group


def test_stats_by_an_attribute_with_no_column_reads_the_values_each_write_kept(
    filled: str, env: Path
) -> None:
    code, out, _ = run("stats", "--since", "1h", "--by", "discord.shard.id", "--format", "json")
    assert code == 0 and [(r["group"], r["count"]) for r in json.loads(out)] == [(None, 21)]
    with store_tracer(env) as tracer:  # the bot writes on
        now = time.time_ns()
        span = tracer.start_span(
            "command ping",
            start_time=now - 10**9,
            attributes={"app.command": "ping", "app.outcome": "ok", "discord.shard.id": 3},
        )
        span.end(end_time=now - 10**9 + 3_000_000)
    code, out, _ = run("stats", "--since", "1h", "--by", "discord.shard.id", "--format", "json")
    assert code == 0 and [(r["group"], r["count"]) for r in json.loads(out)] == [
        (None, 21),
        ("3", 1),
    ]
    with SpanStore.open(env) as store:  # kept by key as the spans were written
        assert store.conn.execute(
            "SELECT count(*) FROM root_values WHERE key = 'discord.shard.id'"
        ).fetchone() == (1,)
    assert not Path(f"{env}-groups").exists()  # no cache beside the store


def test_heatmap_shows_a_recorded_marker(filled: str) -> None:
    assert run("marker", "--version", "v9")[0] == 0
    code, out, _ = run("stats", "--heatmap", "--since", "1h")
    assert code == 0 and "v9" in out and "▲" in out


def test_trace_prints_the_waterfall_with_attributes(filled: str) -> None:
    code, out, _ = run("trace", filled)
    assert code == 0 and "command mtg" in out and "app.outcome=error" in out


def test_traces_slowest_lists_the_slowest_first(filled: str) -> None:
    code, out, _ = run("traces", "--slowest", "2", "--format", "json")
    assert code == 0 and [t["command"] for t in json.loads(out)] == ["mtg", "ping"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("stats", "--since", "soon"), "--since"),
        (("trace", "0123456789abcdef"), "no trace"),
        (("stats", "--where", "nokey"), "KEY=VALUE"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(filled: str, args: tuple[str, ...], message: str) -> None:
    code, _, err = run(*args)
    assert code == 2 and message in err and err.count("\n") == 1 and "Traceback" not in err


def test_stats_without_a_store_is_one_clear_line(env: Path) -> None:
    code, _, err = run("stats")
    assert code == 2 and err.startswith("chatops: no span store at")


def test_marker_without_key_records_locally_and_says_so(env: Path) -> None:
    code, out, _ = run("marker", "--version", "1.0")
    assert code == 0 and "recorded locally only" in out
    with SpanStore.open(env) as store:
        assert store.conn.execute("SELECT version FROM markers").fetchall() == [("1.0",)]


def test_marker_posts_to_honeycomb_markers_api(
    env: Path, honeycomb: FakeHoneycomb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HONEYCOMB_MARKER_KEY", KEY)
    code, out, err = run("marker", "--version", "2.1", "--url", "https://ci.example/1")
    assert code == 0, err
    (call,) = honeycomb.calls("POST", "/1/markers/")
    assert call.path == "/1/markers/chatops-test"
    assert call.headers["X-Honeycomb-Team"] == KEY
    assert call.body["message"] == "deploy 2.1" and call.body["type"] == "deploy"
    assert call.body["url"] == "https://ci.example/1" and isinstance(call.body["start_time"], int)
    assert KEY not in out + err
    with SpanStore.open(env) as store:
        assert store.conn.execute("SELECT remote_id FROM markers").fetchone()[0] == "id1"


def test_marker_with_rejected_key_fails_without_printing_it(
    env: Path, honeycomb: FakeHoneycomb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HONEYCOMB_MARKER_KEY", "wrong-key-456")
    code, out, err = run("marker", "--version", "2.2")
    assert code == 2 and "401" in err and "wrong-key-456" not in out + err
    with SpanStore.open(env) as store:
        assert store.conn.execute("SELECT count(*) FROM markers").fetchone()[0] == 1


def test_marker_when_honeycomb_is_down_is_one_line(
    env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("HONEYCOMB_API_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("HONEYCOMB_MARKER_KEY", KEY)
    code, _, err = run("marker", "--version", "3")
    assert code == 2 and "cannot reach Honeycomb" in err and err.count("\n") == 1


def test_honeycomb_apply_creates_then_updates_the_board(
    env: Path, honeycomb: FakeHoneycomb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HONEYCOMB_CONFIG_KEY", KEY)
    code, out, err = run("honeycomb", "apply", "--dir", str(INFRA))
    assert code == 0, err
    assert "created board" in out
    assert len(honeycomb.boards) == 1 and len(honeycomb.boards[0]["panels"]) == 6
    assert {a["name"] for a in honeycomb.annotations} >= {"P95 duration by command"}
    aliases = {c["alias"] for c in honeycomb.derived_columns}
    assert aliases >= {"app.is_error", "app.http.duration_ms"}
    specs = [c.body for c in honeycomb.calls("POST", "/1/queries/chatops-test")]
    assert {"op": "HEATMAP", "column": "duration_ms"} in [s["calculations"][0] for s in specs]
    # HTTP attempts are timed by their own duration (a send span's spans its waits too).
    assert {"op": "P95", "column": "app.http.duration_ms"} in [
        c for s in specs for c in s["calculations"]
    ]

    code, out, _ = run("honeycomb", "apply", "--dir", str(INFRA))
    assert code == 0 and "updated board" in out
    assert len(honeycomb.boards) == 1 and len(honeycomb.annotations) == 6
    # app.is_error, app.http.duration_ms, and the SLO's SLI: updated, not created again
    assert len(honeycomb.derived_columns) == 3
    assert all(c.headers["X-Honeycomb-Team"] == KEY for c in honeycomb.requests)


def test_honeycomb_apply_dry_run_sends_nothing(env: Path) -> None:
    code, out, _ = run("honeycomb", "apply", "--dir", str(INFRA), "--dry-run")
    assert code == 0 and "would apply board" in out


def test_honeycomb_apply_without_key_is_one_line(env: Path) -> None:
    code, _, err = run("honeycomb", "apply", "--dir", str(INFRA))
    assert code == 2 and "HONEYCOMB_CONFIG_KEY" in err


def test_honeycomb_apply_creates_triggers_slo_burn_alerts_and_the_webhook_once(
    env: Path, honeycomb: FakeHoneycomb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HONEYCOMB_CONFIG_KEY", KEY)
    monkeypatch.setenv("HONEYCOMB_ALERT_WEBHOOK_URL", "https://bot.example/hooks/honeycomb")
    monkeypatch.setenv("HONEYCOMB_WEBHOOK_SECRET", "hook-secret-456")
    code, out, err = run("honeycomb", "apply", "--dir", str(INFRA))
    assert code == 0, err
    assert "created trigger chatops: a command's p95 over 2 s" in out
    assert "created SLO chatops: commands succeed" in out
    assert "hook-secret-456" not in out + err
    (recipient,) = honeycomb.recipients
    assert recipient["details"]["webhook_url"] == "https://bot.example/hooks/honeycomb"
    assert recipient["details"]["webhook_secret"] == "hook-secret-456"
    # Burn alerts' default payload differs from a trigger's: one template per alert type.
    templates = recipient["details"]["webhook_payloads"]["payload_templates"]
    assert templates == {kind: {"body": template(kind)} for kind in KINDS}
    by_name = {t["name"]: t for t in honeycomb.triggers}
    p95 = by_name["chatops: a command's p95 over 2 s"]
    assert p95["query"]["calculations"] == [{"op": "P95", "column": "duration_ms"}]
    assert p95["query"]["breakdowns"] == ["app.command"]
    assert p95["threshold"] == {"op": ">", "value": 2000}
    errors = by_name["chatops: a command's error rate over 5%"]
    assert errors["query"]["calculations"] == [{"op": "AVG", "column": "app.is_error"}]
    assert all(t["recipients"] == [{"id": recipient["id"]}] for t in honeycomb.triggers)
    (slo,) = honeycomb.slos
    assert slo["sli"] == {"alias": "app.sli.command_ok"} and slo["target_per_million"] == 995000
    assert "app.sli.command_ok" in {c["alias"] for c in honeycomb.derived_columns}
    assert sorted(a["alert_type"] for a in honeycomb.burn_alerts) == [
        "budget_rate",
        "exhaustion_time",
    ]
    assert all(a["slo"] == {"id": slo["id"]} for a in honeycomb.burn_alerts)

    # Again: everything updated in place, nothing new.
    code, out, _ = run("honeycomb", "apply", "--dir", str(INFRA))
    assert code == 0 and "updated trigger" in out and "updated burn alert" in out
    assert "created" not in out
    assert len(honeycomb.triggers) == 2 and len(honeycomb.slos) == 1
    assert len(honeycomb.burn_alerts) == 2 and len(honeycomb.recipients) == 1


def test_honeycomb_apply_without_a_webhook_url_says_alerts_notify_no_one(
    env: Path, honeycomb: FakeHoneycomb, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HONEYCOMB_CONFIG_KEY", KEY)
    monkeypatch.delenv("HONEYCOMB_ALERT_WEBHOOK_URL", raising=False)
    code, out, _ = run("honeycomb", "apply", "--dir", str(INFRA))
    assert code == 0 and "no webhook recipient (HONEYCOMB_ALERT_WEBHOOK_URL is not set)" in out
    assert honeycomb.recipients == [] and all(t["recipients"] == [] for t in honeycomb.triggers)


# -- what the data verbs print: --format json on each, tables not cut when piped

REPO_FLAGS = Path(__file__).resolve().parents[2] / "flags.json"


def run_verb(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args))
    return result.exit_code, result.stdout


def test_trace_json_lists_every_span_with_its_attributes(filled: str) -> None:
    code, out = run_verb("trace", filled, "--format", "json")
    assert code == 0
    spans = json.loads(out)
    assert spans[0]["name"] == "command mtg"
    assert spans[0]["attributes"]["app.outcome"] == "error"


def test_flags_eval_json_has_value_variant_and_reason() -> None:
    code, out = run_verb(
        "flags", "eval", "aci-operator", "--file", str(REPO_FLAGS), "--user", "42", "--admin",
        "--format", "json",
    )  # fmt: skip
    assert code == 0
    assert json.loads(out) == {
        "key": "aci-operator",
        "value": True,
        "variant": "on",
        "reason": "targeting_match",
        "error_code": None,
        "error_message": None,
    }


def test_flags_eval_json_of_an_unknown_flag_says_why_and_exits_1() -> None:
    code, out = run_verb(
        "flags", "eval", "nope", "--file", str(REPO_FLAGS), "--user", "1", "--format", "json"
    )
    assert code == 1
    assert json.loads(out)["error_code"] == "flag_not_found"


def test_flags_check_json_lists_problems_and_exits_1_on_errors(tmp_path: Path) -> None:
    code, out = run_verb("flags", "check", str(REPO_FLAGS), "--format", "json")
    assert code == 0 and json.loads(out) == {
        "file": str(REPO_FLAGS), "flags": 4, "problems": []
    }  # fmt: skip
    broken = tmp_path / "flags.json"
    broken.write_text('{"flags": {"x": {"state": "ENABLED"}}}')
    code, out = run_verb("flags", "check", str(broken), "--format", "json")
    report = json.loads(out)
    assert code == 1 and report["problems"]
    assert {p["severity"] for p in report["problems"]} == {"error"}


def test_piped_tables_are_not_cut_at_80_columns(env: Path) -> None:
    long_name = "relationships-with-a-very-long-command-name-that-goes-past-eighty-columns"
    with store_tracer(env) as tracer:
        root(tracer, long_name, start_ns=time.time_ns() - 10**9, duration_ms=5)
    code, out = run_verb("stats", "--since", "1h")
    assert code == 0
    row = next(line for line in out.splitlines() if long_name in line)
    assert len(row) > 80 and "…" not in row
    assert max(len(line) for line in out.splitlines()) <= PIPED_WIDTH


def test_shell_completion_as_documented_completes_verbs_and_options() -> None:
    runner = CliRunner()
    script = runner.invoke(cli, [], prog_name="chatops", env={"_CHATOPS_COMPLETE": "bash_source"})
    assert "_chatops_completion()" in script.output
    verbs = runner.invoke(
        cli,
        [],
        prog_name="chatops",
        env={"_CHATOPS_COMPLETE": "bash_complete", "COMP_WORDS": "chatops do", "COMP_CWORD": "1"},
    )
    assert verbs.output.split() == ["plain,doctor"]
    options = runner.invoke(
        cli,
        [],
        prog_name="chatops",
        env={
            "_CHATOPS_COMPLETE": "bash_complete",
            "COMP_WORDS": "chatops deploy --resource",
            "COMP_CWORD": "2",
        },
    )
    assert options.output.split() == ["plain,--resource-group"]
