"""Personas in ``chatops console``: who is typing decides what the shipped flags allow.

One console process tries each persona of ``CASES`` in turn (the first from the
command line's ``--as``/``--role``/``--guild``, the rest with ``/as``). For each,
the console prints what every gating flag says (through the bot's own
OpenFeature client), and the bot then does exactly that: a command behind a flag
that is on answers, one behind a flag that is off is refused, or unknown when
the flag is hidden.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers.console_transcript import Transcript, flat, run_console

ROLE_READER = "200000000000000001"  # aci-reader's role in flags.json
IN_ROLLOUT, OUT_OF_ROLLOUT = "300000000000000003", "300000000000000001"  # coin-flip by guild
UNKNOWN = "I don't know `!{}`"
REFUSED = "You can't use `!{}`"
# The bot names whoever must answer; a persona has a name of its own (not "You").
ASKED = "Only {} can answer"


@dataclass(frozen=True)
class Case:
    name: str
    persona: str  # /as arguments (the first case's are given on the command line)
    flags: dict[str, bool]
    # (line, what its answer shows), each following from one flag decision above
    probes: tuple[tuple[str, str], ...]


CASES = [
    Case(
        "a role grants reading but not operating, outside the rollout",
        f"100000000000000003 --role {ROLE_READER} --guild {OUT_OF_ROLLOUT}",
        {"aci-reader": True, "aci-operator": False, "beta-commands": False, "coin-flip": False},
        (
            ("!aci list", "GROUP STATE"),
            ("!aci restart web", REFUSED.format("aci restart")),
            ("!beta", UNKNOWN.format("beta")),
            ("!flip", UNKNOWN.format("flip")),
        ),
    ),
    Case(
        "a listed operator, not in the beta, inside the rollout",
        "100000000000000002",
        {"aci-reader": True, "aci-operator": True, "beta-commands": False, "coin-flip": True},
        (
            ("!aci restart web", ASKED.format("Alex")),
            ("/press Cancel", "Cancelled: `web` was not restarted"),
            ("!beta", UNKNOWN.format("beta")),
            ("!flip", "Heads.|Tails."),
        ),
    ),
    Case(
        "an administrator gets every permission but not another guild's rollout",
        f"100000000000000009 --admin --guild {OUT_OF_ROLLOUT}",
        {"aci-reader": True, "aci-operator": True, "beta-commands": True, "coin-flip": False},
        (
            ("!beta", "You're in the beta"),
            ("!aci stop web", ASKED.format("Noor")),
            ("/press Cancel", "Cancelled: `web` was not stopped"),
            ("!flip", UNKNOWN.format("flip")),
        ),
    ),
    Case(
        "a stranger gets nothing but the guild's rollout",
        "100000000000000009",
        {"aci-reader": False, "aci-operator": False, "beta-commands": False, "coin-flip": True},
        (
            ("!aci list", REFUSED.format("aci list")),
            ("!beta", UNKNOWN.format("beta")),
            ("!flip", "Heads.|Tails."),
        ),
    ),
    Case(
        "the default persona reaches !aci, !beta and !flip with the shipped flags",
        "",
        {"aci-reader": True, "aci-operator": True, "beta-commands": True, "coin-flip": True},
        (
            ("!aci list", "GROUP STATE"),
            ("!beta", "You're in the beta"),
            ("!flip", "Heads.|Tails."),
        ),
    ),
]


@pytest.fixture(scope="module")
def transcript(tmp_path_factory: pytest.TempPathFactory) -> Transcript:
    first, *rest = CASES
    lines = [line for line, _ in first.probes]
    for case in rest:
        lines.append(f"/as {case.persona}".strip() if case.persona else "/as --guild " + IN_ROLLOUT)
        lines += [line for line, _ in case.probes]
    args = [*first.persona.split(), *(arg for line in lines for arg in ("-c", line))]
    args[0:1] = ["--as", args[0]]
    return run_console(tmp_path_factory.mktemp("personas"), *args)


def segments(transcript: Transcript) -> list[tuple[str, list[tuple[str, str]]]]:
    """Per persona: the flag lines printed when it was seated, then its exchanges."""
    found: list[tuple[str, list[tuple[str, str]]]] = [(transcript.banner, [])]
    for typed, text in transcript.exchanges:
        if typed.startswith("/as"):
            found.append((text, []))
        else:
            found[-1][1].append((typed, text))
    return found


def printed_flags(text: str) -> dict[str, bool]:
    return {
        key: verdict == "on"
        for key, verdict in re.findall(r"^  flag (\S+)\s+(on|off)\s", text, re.MULTILINE)
    }


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(CASES)), ids=[c.name for c in CASES])
def test_the_console_prints_the_persona_s_flags_and_the_bot_acts_on_them(
    transcript: Transcript, index: int
) -> None:
    case = CASES[index]
    seated, exchanges = segments(transcript)[index]
    assert printed_flags(seated) == case.flags
    assert [typed for typed, _ in exchanges] == [line for line, _ in case.probes]
    for (line, expected), (_, text) in zip(case.probes, exchanges, strict=True):
        answer = flat(text.split("\ntrace ")[0])
        assert re.search(expected, answer), (line, expected, answer)


@pytest.mark.slow
def test_the_persona_line_names_who_is_typing(transcript: Transcript) -> None:
    first = segments(transcript)[0][0]
    assert (
        f"as Sam, user 100000000000000003 in guild {OUT_OF_ROLLOUT}; roles {ROLE_READER}; "
        "admin no" in first
    )


@pytest.mark.slow
def test_a_bad_as_line_is_one_line_of_usage_and_the_persona_stays(tmp_path: Path) -> None:
    transcript = run_console(tmp_path, "-c", "/as not-a-number", "-c", "!whoami")
    said = flat(transcript.after("/as not-a-number"))
    assert said.startswith("/as: Invalid value for '[USER_ID]'")
    assert "usage: /as [USER_ID]" in said
    assert "targetingKey 100000000000000001" in transcript.after("!whoami")
