"""The flag file provider answers as flagd's provider in file mode, without grpc or a thread."""

from __future__ import annotations

import json
import logging
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from openfeature import api
from openfeature.client import OpenFeatureClient
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import FlagEvaluationDetails, Reason

from commands.toolkit import flag_file_provider
from commands.toolkit.flag_checks import make_context
from commands.toolkit.flag_file_provider import FlagFileProvider
from commands.toolkit.flags import (
    FlagsConfig,
    build_provider,
    evaluate,
    shutdown_flags,
    start_flags,
)

REPO = Path(__file__).resolve().parents[2]
REPO_FLAGS = REPO / "flags.json"
BOOL = {"on": True, "off": False}
# One default of each type: a flag of another type answers TYPE_MISMATCH.
DEFAULTS: tuple[Any, ...] = (False, True, "", "fallback", 0, 7, 0.0, 2.5, {}, {"x": 1})


def flag(
    targeting: Any = None,
    *,
    variants: dict[str, Any] | None = None,
    default: Any = "off",
    state: str = "ENABLED",
    **extra: Any,
) -> dict[str, Any]:
    data: dict[str, Any] = {
        "state": state,
        "variants": BOOL if variants is None else variants,
        "defaultVariant": default,
        **extra,
    }
    if targeting is not None:
        data["targeting"] = targeting
    return data


def when(rule: Any, then: Any = "on", otherwise: Any = "off") -> dict[str, Any]:
    return {"if": [rule, then, otherwise]}


RULES: dict[str, Any] = {
    "$schema": "https://flagd.dev/schema/v0/flags.json",
    "metadata": {"owner": "ops", "revision": 3},
    "$evaluators": {"is-admin": {"==": [{"var": "admin"}, True]}},
    "flags": {
        "listed-users": flag(when({"in": [{"var": "targetingKey"}, ["1", "2", "3"]]})),
        "role-holders": flag(
            when({"some": [{"var": "roles"}, {"in": [{"var": ""}, ["70", "71"]]}]})
        ),
        "in-a-string": flag(when({"in": ["7", {"var": "channelId"}]})),
        "admins-by-ref": flag(when({"$ref": "is-admin"}, "on", None)),
        "admins-or-users": flag(
            when({"or": [{"$ref": "is-admin"}, {"in": [{"var": "targetingKey"}, ["4"]]}]})
        ),
        "guild-rollout": flag(
            when(
                {"var": "guildId"},
                {
                    "fractional": [
                        {"cat": [{"var": "$flagd.flagKey"}, {"var": "guildId"}]},
                        ["on", 30],
                        ["off", 70],
                    ]
                },
                "off",
            )
        ),
        # No guard: without a guildId there is nothing to hash and the default answers.
        "guild-three-way": flag(
            {"fractional": [{"var": "guildId"}, ["a", 1], ["b", 2], ["c", 7]]},
            variants={"a": "alpha", "b": "beta", "c": "gamma"},
            default="c",
        ),
        "user-shorthand-rollout": flag({"fractional": [["on", 50], ["off", 50]]}),
        "zero-weights": flag({"fractional": [{"var": "guildId"}, ["on", 0], ["off", 0]]}),
        "new-clients": flag(when({"sem_ver": [{"var": "version"}, ">=", "1.2.0"]})),
        "same-major": flag(when({"sem_ver": [{"var": "version"}, "^", "v2"]})),
        "channel-prefix": flag(when({"starts_with": [{"var": "channelId"}, "12"]})),
        "user-suffix": flag(when({"ends_with": [{"var": "targetingKey"}, "7"]})),
        "boolean-result": flag(
            {"==": [{"var": "admin"}, True]},
            variants={"true": "yes", "false": "no"},
            default="false",
        ),
        "number-result": flag({"var": "tier"}, variants={"1": 10, "2": 20, "3": 30.5}, default="1"),
        "unknown-variant": flag(when({"var": "admin"}, "maybe", "off")),
        "unknown-operator": flag({"frobnicate": [1, 2]}),
        "targeting-not-an-object": flag(["on"]),
        "bad-default": flag(default="nope"),
        "no-default": flag(when({"var": "admin"}, "on", None), default=None),
        "empty-default": flag(default=""),
        "disabled": flag(when({"$ref": "is-admin"}), state="DISABLED"),
        "static-string": flag(variants={"red": "#f00", "green": "#0f0"}, default="green"),
        "static-int": flag(variants={"small": 1, "big": 1000}, default="big"),
        "static-float": flag(variants={"low": 0.25, "high": 0.75}, default="high"),
        "static-object": flag(variants={"cfg": {"a": [1, 2]}, "none": {}}, default="cfg"),
        "with-metadata": flag(
            when({"$ref": "is-admin"}),
            metadata={"hidden": True, "sensitive": False, "revision": 9},
        ),
    },
}
MISSING = "no-such-flag"


def contexts(count: int, seed: int = 14) -> list[EvaluationContext]:
    """Users, guilds, channels, roles, admins, versions and tiers, with attributes absent too."""
    rng = random.Random(seed)
    found: list[EvaluationContext] = [
        EvaluationContext(),
        EvaluationContext(targeting_key="1"),
        EvaluationContext(attributes={"guildId": "5"}),
    ]
    versions = [None, "1.0", "1.2.0", "v1.3.1", "2.0.0-rc.1", "2.5", "10.0.0", "not-a-version"]
    while len(found) < count:
        guild = str(10**17 + rng.randrange(10**6)) if rng.random() < 0.8 else None
        context = make_context(
            rng.choice(["1", "2", "3", "4", "17", "27", str(rng.randrange(10**18))]),
            guild_id=guild,
            channel_id=rng.choice(["7", "12", "123", "999", "70"]),
            role_ids=rng.sample(["70", "71", "72", "80"], rng.randrange(3)),
            admin=rng.random() < 0.2,
        )
        extra: dict[str, Any] = {}
        version = rng.choice(versions)
        if version is not None:
            extra["version"] = version
        tier = rng.choice([None, 1, 2, 3, 1.0, "2", 9])
        if tier is not None:
            extra["tier"] = tier
        found.append(EvaluationContext(context.targeting_key, {**context.attributes, **extra}))
    return found


def details_of(
    client: OpenFeatureClient, key: str, default: Any, context: EvaluationContext
) -> Any:
    found: FlagEvaluationDetails[Any]
    if isinstance(default, bool):
        found = client.get_boolean_details(key, default, context)
    elif isinstance(default, str):
        found = client.get_string_details(key, default, context)
    elif isinstance(default, int):
        found = client.get_integer_details(key, default, context)
    elif isinstance(default, float):
        found = client.get_float_details(key, default, context)
    else:
        found = client.get_object_details(key, default, context)
    return (
        found.value,
        type(found.value),
        found.variant,
        found.reason,
        found.error_code,
        found.error_message,
        dict(found.flag_metadata),
    )


Pair = Callable[[Path], tuple[OpenFeatureClient, OpenFeatureClient]]


@pytest.fixture
def pair() -> Iterator[Pair]:
    """Both providers on the same file, each bound to its own OpenFeature domain."""

    def bind(path: Path) -> tuple[OpenFeatureClient, OpenFeatureClient]:
        from openfeature.contrib.provider.flagd import FlagdProvider
        from openfeature.contrib.provider.flagd.config import ResolverType

        flagd = FlagdProvider(
            resolver_type=ResolverType.FILE,
            offline_flag_source_path=str(path),
            deadline_ms=500,
        )
        api.set_provider_and_wait(flagd, domain="equivalence-flagd")
        api.set_provider_and_wait(FlagFileProvider(path), domain="equivalence-file")
        return api.get_client("equivalence-flagd"), api.get_client("equivalence-file")

    yield bind
    api.shutdown()


def differences(
    flagd: OpenFeatureClient,
    ours: OpenFeatureClient,
    keys: list[str],
    found_contexts: list[EvaluationContext],
) -> tuple[int, list[str]]:
    compared, different = 0, []
    for key in keys:
        for default in DEFAULTS:
            for context in found_contexts:
                expected = details_of(flagd, key, default, context)
                actual = details_of(ours, key, default, context)
                compared += 1
                if actual != expected:
                    different.append(f"{key} {default!r} {context}: {actual} != {expected}")
    return compared, different


def test_the_repository_flags_answer_as_flagd_does(pair: Pair) -> None:
    flagd, ours = pair(REPO_FLAGS)
    keys = [*json.loads(REPO_FLAGS.read_text())["flags"], MISSING]
    listed = ["100000000000000001", "100000000000000002", "42"]
    found = [
        EvaluationContext(),
        *(
            make_context(
                user,
                guild_id=str(10**17 + 7919 * guild) if guild % 5 else None,
                channel_id="6",
                role_ids=["200000000000000001"] if guild % 3 == 0 else ["7"],
                admin=guild % 7 == 0,
            )
            for user in listed
            for guild in range(60)
        ),
    ]
    compared, different = differences(flagd, ours, keys, found)
    assert not different, different[:5]
    assert compared == len(keys) * len(DEFAULTS) * len(found)
    # The comparison covers every answer flags.json can give, not only errors.
    reasons = {details_of(ours, "coin-flip", False, c)[2:4] for c in found}
    assert reasons == {("on", Reason.TARGETING_MATCH), ("off", Reason.TARGETING_MATCH)}


def test_every_kind_of_rule_answers_as_flagd_does(pair: Pair, tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    path.write_text(json.dumps(RULES))
    flagd, ours = pair(path)
    keys = [*RULES["flags"], MISSING]
    found = contexts(60)
    _, different = differences(flagd, ours, keys, found)
    assert not different, different[:5]
    # What the comparison went through: matches, defaults, disabled and each error kind.
    seen = {
        (details[3], details[4])
        for key in keys
        for default in DEFAULTS
        for context in found[:20]
        for details in [details_of(ours, key, default, context)]
    }
    for reason in (Reason.TARGETING_MATCH, Reason.STATIC, Reason.DEFAULT, Reason.DISABLED):
        assert (reason, None) in seen
    for code in (
        ErrorCode.FLAG_NOT_FOUND,
        ErrorCode.TYPE_MISMATCH,
        ErrorCode.GENERAL,
        ErrorCode.PARSE_ERROR,
    ):
        assert (Reason.ERROR, code) in seen


def write(path: Path, flags: dict[str, Any], later: float = 0) -> Path:
    path.write_text(json.dumps({"flags": flags}))
    if later:
        stamp = time.time() + later
        os.utime(path, (stamp, stamp))
    return path


def started(path: Path, **kwargs: Any) -> tuple[FlagFileProvider, list[EventDetails]]:
    provider = FlagFileProvider(path, **kwargs)
    events: list[EventDetails] = []
    provider.add_listener(events.append)
    provider.initialize(EvaluationContext())
    return provider, events


def test_an_edited_file_is_picked_up(tmp_path: Path) -> None:
    path = write(tmp_path / "flags.json", {"f": flag(default="off")})
    provider, _ = started(path, poll_ms=20)
    assert provider.resolve_boolean_details("f", True).value is False
    write(path, {"f": flag(default="on")})
    deadline = time.monotonic() + 5
    while provider.resolve_boolean_details("f", False).value is not True:
        assert time.monotonic() < deadline, "the edit was not picked up"
        time.sleep(0.01)


def test_the_file_is_looked_at_at_most_once_per_poll_interval(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(tmp_path / "flags.json", {"f": flag(default="off")})
    now = [100.0]
    provider, events = started(path, poll_ms=1000, clock=lambda: now[0])
    looks: list[str] = []
    real_stat = os.stat

    def counting_stat(target: Any, *args: Any, **kwargs: Any) -> os.stat_result:
        if Path(target) == path:
            looks.append("stat")
        return real_stat(target, *args, **kwargs)

    monkeypatch.setattr(flag_file_provider.os, "stat", counting_stat)
    write(path, {"f": flag(default="on")}, later=5)
    for _ in range(100):
        assert provider.resolve_boolean_details("f", True).value is False
    assert looks == []
    now[0] += 0.999
    assert provider.resolve_boolean_details("f", True).value is False
    now[0] += 0.001
    assert provider.resolve_boolean_details("f", False).value is True
    for _ in range(100):
        provider.resolve_boolean_details("f", False)
    assert looks == ["stat"]
    now[0] += 1
    provider.resolve_boolean_details("f", False)  # unchanged: looked at, not reloaded
    assert looks == ["stat", "stat"]
    assert [e.flags_changed for e in events] == [["f"], None, ["f"]]


def test_a_broken_edit_keeps_the_last_good_flags_and_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path / "flags.json", {"f": flag(default="on")})
    now = [0.0]
    provider, events = started(path, poll_ms=500, clock=lambda: now[0])
    assert [e.error_code for e in events] == [None, None]  # configuration changed, ready
    path.write_text('{"flags": {"f": {"state": "ENABLED",,}}}')
    for _ in range(3):
        now[0] += 1
        details = provider.resolve_boolean_details("f", False)
        assert (details.value, details.variant, details.reason) == (True, "on", Reason.STATIC)
    (error,) = events[2:]
    assert error.error_code is ErrorCode.PARSE_ERROR and "invalid JSON" in str(error.message)
    assert provider.problem is not None
    write(path, {"f": flag(default="off")}, later=5)
    now[0] += 1
    assert provider.resolve_boolean_details("f", True).value is False
    assert [e.error_code for e in events[3:]] == [None, None]  # configuration changed, ready
    assert provider.problem is None


def test_a_missing_file_fails_initialisation_and_loads_when_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "flags.json"
    provider = FlagFileProvider(path, poll_ms=0)
    with pytest.raises(Exception, match="file not found"):
        provider.initialize(EvaluationContext())
    write(path, {"f": flag(default="on")})
    assert provider.resolve_boolean_details("f", False).value is True


def test_the_provider_starts_no_thread(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    provider, _ = started(write(tmp_path / "flags.json", {"f": flag()}), poll_ms=0)
    for _ in range(10):
        provider.resolve_boolean_details("f", True)
    assert set(threading.enumerate()) == before


def test_the_bot_fails_closed_from_the_evaluation_that_finds_a_broken_edit(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = write(tmp_path / "flags.json", {"f": flag(default="on")})
    caplog.set_level(logging.WARNING)
    # poll_ms=0: every evaluation looks at the file, so the next one is the one that finds it.
    start_flags(FlagsConfig(file=path, poll_ms=0))
    try:
        context = make_context("1")
        assert evaluate("f", False, context).value is True
        path.write_text('{"flags": {"f": {"state": "ENABLED",,}}}')
        broken = evaluate("f", True, context)
        assert (broken.value, broken.reason) == (True, Reason.ERROR)  # the code default
        assert broken.error_code is ErrorCode.PROVIDER_NOT_READY
        assert "line 1, column" in str(broken.error_message)
        assert evaluate("f", False, context).value is False
        write(path, {"f": flag(default="on")}, later=5)
        assert evaluate("f", False, context).value is True
    finally:
        shutdown_flags()
    warnings = [r.getMessage() for r in caplog.records if r.name == "commands.toolkit.flags"]
    assert len(warnings) == 2, warnings
    assert "permission flags deny" in warnings[0] and "usable again" in warnings[1]


GRPC_FREE = """
import sys
from pathlib import Path

from commands.toolkit.flag_checks import make_context
from commands.toolkit.flags import FlagsConfig, build_provider, evaluate, start_flags

if sys.argv[2] == "file":
    start_flags(FlagsConfig(file=Path(sys.argv[1])))
    assert evaluate("aci-operator", False, make_context("100000000000000001")).value is True
else:
    build_provider(FlagsConfig(provider=sys.argv[2]))
print(sorted(m for m in sys.modules if m.split(".")[0] == "grpc" or "provider.flagd" in m)[:3])
"""


def modules_loaded(mode: str) -> str:
    result = subprocess.run(
        [sys.executable, "-c", GRPC_FREE, str(REPO_FLAGS), mode],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_file_mode_imports_neither_grpc_nor_the_flagd_provider() -> None:
    assert modules_loaded("file") == "[]"
    # The same check sees grpc where it is used: a flagd server.
    assert "'grpc'" in modules_loaded("rpc")


def test_a_flagd_server_still_uses_the_flagd_provider() -> None:
    from openfeature.contrib.provider.flagd import FlagdProvider

    for mode in ("rpc", "in-process"):
        provider = build_provider(FlagsConfig(provider=mode))  # type: ignore[arg-type]
        assert isinstance(provider, FlagdProvider)
        assert provider.get_metadata().name == FlagFileProvider(REPO_FLAGS).get_metadata().name
