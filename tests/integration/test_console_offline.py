"""``chatops console`` offline: every command in ``!help`` answers for real.

The console runs as a process, as a newcomer would start it, with no network
and nothing configured but the shipped example ``flags.json``: the fakes it
starts (``bot/sandbox/offline.py``) answer every external call, and each trace
it prints shows the call to the fake's address (printed in its banner). The tour
is typed into the prompt through a pipe, so ``!trace`` can look up the trace id
the console printed for the tour's first line.
"""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from bot.config import Settings
from bot.sandbox.fakes.catfact import FACT
from bot.sandbox.offline import offline_services
from tests.helpers.chatops_process import closed_port
from tests.helpers.console_transcript import (
    Transcript,
    drive_console,
    flat,
    help_names,
    run_console,
)

CATFACT, SCRYFALL, FUNCTION, ARM, BUILDKITE = (
    "cat-fact",
    "scryfall",
    "relationships endpoint",
    "azure resource manager",
    "buildkite",
)
DEFAULT_USER = "100000000000000001"


def assert_answered(text: str, expected: str, service: str | None, t: Transcript) -> None:
    """The answer matches the pattern ``expected``, a trace follows, the outcome is ok and
    (with ``service``) a span shows a call to that fake."""
    answer = flat(text.split("\ntrace ")[0])
    assert answer.startswith(("bot>", "choices>")), text
    assert re.search(expected, answer), (expected, answer)
    assert "\ntrace " in text, f"no trace printed after {answer!r}"
    assert "app.outcome=ok" in text, text
    if service is not None:
        assert f"url.full={t.fakes[service]}/" in text, (service, text)


# -- the tour: every command in !help, bang and slash ------------------------------

# The tour's first line; its trace id (printed by the console) is what ``!trace`` looks up,
# in the session's span store (SPAN_STORE's default, under the console's directory).
FIRST = "!ping"
# The marker the tour sets first (``/marker``: in Honeycomb and in the span store).
MARKER = "/marker tour"
DEPLOYED = r"^bot> \S+ `tour` \d{4}-\d\d-\d\d \d\d:\d\d UTC: pending \(after "
TRACED = r"^bot> trace {first} .*`command ping`: outcome \*\*ok\*\*"

# (line, expected in the answer, the fake the trace must show a call to); "{first}" is
# FIRST's trace id
BANG_TOUR: list[tuple[str, str, str | None]] = [
    ("!help", "Azure:", None),
    ("!ping", "Pong!", None),
    ("!about", "chatops-bot", None),
    ("!roll 2d6", "2d6:", None),
    ("!catfact", re.escape(FACT), CATFACT),
    ("!whoami", f"targetingKey {DEFAULT_USER}", None),
    ("!beta", "You're in the beta", None),
    ("!flip", r"Heads\.|Tails\.", None),
    (
        "!builds",
        r"\*\*App\*\* on `main` `abcd0b72`: success in 3m 30s .*\*\*Docs-Site\*\*",
        BUILDKITE,
    ),
    ("!mtg t:dragon", "Shivan Dragon", SCRYFALL),
    ("!card shivan", "Shivan Dragon", SCRYFALL),
    ("!relationships someone", f"{DEFAULT_USER} and someone are friends", FUNCTION),
    ("!aci list", "nightly Stopped", ARM),
    ("!aci status web", "web.westeurope.azurecontainer.io", ARM),
    ("!aci logs web", "listening", ARM),
    ("!aci start nightly", r"`nightly` started in [\d.]+ s\. Now: `nightly` Running", ARM),
    ("!deploys", DEPLOYED, None),
    ("!trace {first}", TRACED, None),
]
SLASH_TOUR: list[tuple[str, str, str | None]] = [
    ("/help", "Azure:", None),
    ("/ping", "Pong!", None),
    ("/about", "chatops-bot", None),
    ("/roll dice:2d6", "2d6:", None),
    ("/catfact", re.escape(FACT), CATFACT),
    ("/whoami", f"targetingKey {DEFAULT_USER}", None),
    ("/beta", "You're in the beta", None),
    ("/flip", r"Heads\.|Tails\.", None),
    (
        "/builds pipeline:docs",
        r"^bot> \S+ \*\*Docs-Site\*\* on `main` `abcd0b72`: success in 1m 00s$",
        BUILDKITE,
    ),
    ("/mtg query:t:dragon", "Shivan Dragon", SCRYFALL),
    ("/card name:shivan", "Shivan Dragon", SCRYFALL),
    ("/relationships someone", f"{DEFAULT_USER} and someone are friends", FUNCTION),
    ("/aci list", "web Running", ARM),
    ("/aci status group:worker", "sidecar", ARM),
    ("/aci logs group:worker", "listening", ARM),
    ("/aci start group:web", r"`web` started in [\d.]+ s\. Now: `web` Running", ARM),
    ("/deploys", DEPLOYED, None),
    ("/trace id_prefix:{first}", TRACED, None),
]
# Questions answered with a button: (question, button, expected in the final answer)
RESTARTED = r"`{0}` restarted in [\d.]+ s\. Now: `{0}` Running"
STOPPED = r"`{0}` stopped in [\d.]+ s\. Now: `{0}` Terminated"
CONFIRMED = [
    ("!aci restart worker", "Confirm", RESTARTED.format("worker") + ", `sidecar` Running"),
    ("!aci stop web", "Confirm", STOPPED.format("web")),
    ("/aci restart group:nightly", "Confirm", RESTARTED.format("nightly")),
    ("/aci stop group:nightly", "Confirm", STOPPED.format("nightly")),
]
COMPLETE = [
    ("/complete /card name:shiv", "choices> Shivan Dragon", SCRYFALL),
    ("/complete /aci status group:w", "choices> web | worker", ARM),
]


@dataclass
class Tour:
    transcript: Transcript
    first: str  # FIRST's trace id

    def filled(self, text: str) -> str:
        return text.replace("{first}", self.first)


@pytest.fixture(scope="module")
def tour(tmp_path_factory: pytest.TempPathFactory) -> Tour:
    def then(first: str) -> list[str]:
        lines = [MARKER]
        lines += [line for line, _, _ in BANG_TOUR + SLASH_TOUR if line != FIRST]
        for question, button, _ in CONFIRMED:
            lines += [question, f"/press {button}"]
        lines += [line for line, _, _ in COMPLETE]
        return [line.replace("{first}", first) for line in lines]

    # SPAN_STORE unset: the console's default store, as a newcomer gets it.
    transcript, first = drive_console(tmp_path_factory.mktemp("tour"), FIRST, then, SPAN_STORE=None)
    return Tour(transcript, first)


@pytest.mark.slow
def test_console_starts_a_fake_for_each_unconfigured_service(tour: Tour) -> None:
    assert set(tour.transcript.fakes) == {
        CATFACT,
        SCRYFALL,
        FUNCTION,
        ARM,
        BUILDKITE,
        "honeycomb markers",
    }
    for url in tour.transcript.fakes.values():
        assert re.fullmatch(r"https?://127\.0\.0\.1:\d+", url), url


@pytest.mark.slow
def test_the_tour_covers_every_command_in_help_bang_and_slash(tour: Tour) -> None:
    listed = help_names(tour.transcript.after("!help"))
    assert {"aci", "catfact", "mtg", "card", "relationships", "beta", "flip"} <= listed
    assert {"builds", "deploys", "trace"} <= listed
    bang = {line[1:].split()[0] for line, _, _ in BANG_TOUR}
    slash = {line[1:].split()[0] for line, _, _ in SLASH_TOUR}
    assert bang == listed
    assert help_names(tour.transcript.after("/help")) == listed
    assert slash == listed


@pytest.mark.slow
@pytest.mark.parametrize(
    ("line", "expected", "service"), BANG_TOUR + SLASH_TOUR, ids=lambda v: str(v)[:30]
)
def test_each_command_answers_for_real_with_its_external_call_traced(
    tour: Tour, line: str, expected: str, service: str | None
) -> None:
    text = tour.transcript.after(tour.filled(line))
    assert_answered(text, tour.filled(expected), service, tour.transcript)


@pytest.mark.slow
@pytest.mark.parametrize(("question", "button", "expected"), CONFIRMED, ids=str)
def test_a_confirmed_stop_or_restart_really_changes_the_container_group(
    tour: Tour, question: str, button: str, expected: str
) -> None:
    t = tour.transcript
    asked = flat(t.after(question))
    assert "[Confirm] [Cancel]" in asked and "/press" in asked
    pressed = t.after(f"/press {button}", CONFIRMED.index((question, button, expected)))
    assert_answered(pressed, expected, ARM, t)


@pytest.mark.slow
@pytest.mark.parametrize(("line", "expected", "service"), COMPLETE, ids=str)
def test_autocomplete_asks_the_fake(tour: Tour, line: str, expected: str, service: str) -> None:
    text = tour.transcript.after(line)
    assert flat(text).startswith(expected)
    assert f"url.full={tour.transcript.fakes[service]}/" in text


@pytest.mark.slow
def test_a_marker_goes_to_the_fake_honeycomb(tour: Tour) -> None:
    text = flat(tour.transcript.after(MARKER))
    assert text.startswith("marker id1 'tour' in Honeycomb dataset chatops-bot")
    assert tour.transcript.fakes["honeycomb markers"] in text


@pytest.mark.slow
def test_nothing_is_logged_as_a_failure_on_the_tour(tour: Tour) -> None:
    stderr = tour.transcript.stderr
    assert "WARNING" not in stderr and "Traceback" not in stderr, stderr


# -- what is faked, and for how long -------------------------------------------------


@pytest.mark.slow
def test_a_configured_url_is_used_as_given_and_no_fake_replaces_it(tmp_path: Path) -> None:
    port = closed_port()
    transcript = run_console(tmp_path, "-c", "!catfact", CATFACT_API_URL=f"http://127.0.0.1:{port}")
    assert CATFACT not in transcript.fakes and SCRYFALL in transcript.fakes
    text = transcript.after("!catfact")
    assert "I couldn't reach the cat-fact API" in flat(text)
    assert f"url.full=http://127.0.0.1:{port}/fact" in text


@pytest.mark.slow
def test_outside_the_checkout_the_console_evaluates_the_flags_it_ships(tmp_path: Path) -> None:
    # An empty directory, FLAGS_FILE unset: the example file in the package decides.
    transcript = run_console(tmp_path, "-c", "!beta", FLAGS_FILE=None)
    assert "flags: the example file shipped with chatops" in transcript.banner
    assert "(error)" not in transcript.banner, transcript.banner
    assert re.search(r"flag aci-operator\s+on\s+\(targeting_match\)", transcript.banner)
    assert "You're in the beta" in flat(transcript.after("!beta"))


@pytest.mark.slow
def test_no_fakes_starts_none(tmp_path: Path) -> None:
    transcript = run_console(tmp_path, "--no-fakes", "-c", "!aci list")
    assert transcript.fakes == {}
    assert "fakes: off (--no-fakes)" in transcript.banner
    assert "Azure is not configured" in flat(transcript.after("!aci list"))


async def test_the_fakes_listen_on_loopback_only_while_the_console_runs(
    settings: Settings, tmp_path: Path
) -> None:
    async with offline_services(settings, tmp_path) as offline:
        addresses = [urlsplit(url) for _, url in offline.started]
        assert len(addresses) == 6
        for address in addresses:
            assert address.hostname == "127.0.0.1"
            socket.create_connection((address.hostname, address.port), timeout=2).close()
        assert offline.settings.catfact_api_url == dict(offline.started)[CATFACT]
    for address in addresses:
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((address.hostname, address.port), timeout=2).close()
