"""Checking a flagd flag file before (and while) the bot uses it.

flagd itself accepts files that only fail when a flag is evaluated: a default
variant that does not exist, targeting that returns an unknown variant, or a
fractional split with no weight. Those fail per evaluation, silently falling back
to code defaults, so ``chatops flags check`` and the bot's start-up warning look
for them up front and name the flag and the place.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from json_logic import builtins as json_logic_builtins  # type: ignore[import-untyped]

FLAGD_OPERATORS = frozenset({"fractional", "starts_with", "ends_with", "sem_ver"})
# json_logic evaluates these itself (lazily), so they are not in its BUILTINS table.
CONTROL_OPERATORS = frozenset(
    {"if", "?:", "and", "or", "filter", "reduce", "map", "all", "some", "none"}
)
OPERATORS = frozenset(json_logic_builtins.BUILTINS) | CONTROL_OPERATORS | FLAGD_OPERATORS
TOP_LEVEL_KEYS = frozenset({"$schema", "flags", "metadata", "$evaluators"})
FLAG_KEYS = frozenset(
    {"state", "variants", "defaultVariant", "targeting", "metadata", "source", "selector"}
)
# Operators whose second argument is evaluated against each element, not the context.
ELEMENT_SCOPED = frozenset({"some", "all", "none", "map", "filter", "reduce"})
# What the bot puts in the evaluation context (commands/toolkit/flag_checks.py), plus flagd's own.
CONTEXT_ATTRIBUTES = frozenset(
    # resourceGroup: only when aci-two-person is evaluated (docs/ops-loop.md).
    {"targetingKey", "guildId", "channelId", "roles", "admin", "resourceGroup", "$flagd"}
)
MAX_WEIGHT_SUM = 2_147_483_647


@dataclass(frozen=True)
class Problem:
    """One finding: where (a JSON path or a line and column) and what."""

    where: str
    message: str
    severity: Literal["error", "warning"] = "error"

    @property
    def text(self) -> str:
        return f"{self.where}: {self.message}" if self.where else self.message


@dataclass
class Report:
    problems: list[Problem] = field(default_factory=list)
    flag_count: int = 0
    readable: bool = True
    # Whether flagd can load it at all (other errors break single flags only).
    loadable: bool = True

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]


def check_file(path: Path) -> Report:
    """Read and check ``path``; an unreadable file is one error with ``readable`` False."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return Report([Problem("", "file not found")], readable=False, loadable=False)
    except (OSError, UnicodeDecodeError) as exc:
        problem = Problem("", f"cannot read the file: {exc}")
        return Report([problem], readable=False, loadable=False)
    return check_text(text)


def check_text(text: str) -> Report:
    """Check a flag file's text: JSON syntax, then flagd's schema, then what evaluation needs."""
    duplicates: list[str] = []

    def no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        seen: dict[str, Any] = {}
        for key, value in pairs:
            if key in seen:
                duplicates.append(key)
            seen[key] = value
        return seen

    try:
        data = json.loads(text, object_pairs_hook=no_duplicates)
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}"
        return Report([Problem(where, f"invalid JSON: {exc.msg}")], loadable=False)
    report = Report()
    report.problems += [
        Problem("", f"key {key!r} appears twice; the last one wins", "warning")
        for key in duplicates
    ]
    if not isinstance(data, dict):
        report.problems.append(Problem("", 'the top level must be an object with "flags"'))
        return report
    for key in data.keys() - TOP_LEVEL_KEYS:
        report.problems.append(Problem(key, "unknown top-level key", "warning"))
    report.problems += _scalar_metadata("metadata", data.get("metadata", {}))
    evaluators = data.get("$evaluators", {})
    if not isinstance(evaluators, dict):
        report.problems.append(Problem("$evaluators", "must be an object"))
        evaluators = {}
    flags = data.get("flags")
    if not isinstance(flags, dict):
        report.problems.append(Problem("flags", "missing, or not an object of flags"))
        report.loadable = False
        return report
    report.flag_count = len(flags)
    for key, flag in flags.items():
        report.problems += _check_flag(f"flags.{key}", flag, evaluators)
    rejected = list(_flagd_accepts(data))
    if rejected:
        report.loadable = False
        if not report.errors:
            report.problems += rejected
    return report


def _check_flag(where: str, flag: Any, evaluators: dict[str, Any]) -> list[Problem]:
    if not isinstance(flag, dict):
        return [Problem(where, "a flag must be an object")]
    problems = [Problem(f"{where}.{k}", "unknown key", "warning") for k in flag.keys() - FLAG_KEYS]
    if flag.get("state") not in ("ENABLED", "DISABLED"):
        problems.append(Problem(f"{where}.state", 'must be "ENABLED" or "DISABLED"'))
    variants = flag.get("variants")
    if not isinstance(variants, dict) or not variants:
        problems.append(Problem(f"{where}.variants", "must be a non-empty object"))
        return problems
    kinds = {_kind(v) for v in variants.values()}
    if len(kinds) > 1:
        problems.append(
            Problem(f"{where}.variants", f"variants mix types ({', '.join(sorted(kinds))})")
        )
    default = flag.get("defaultVariant")
    if isinstance(default, bool):
        default = str(default).lower()
    if default not in (None, "") and default not in variants:
        problems.append(
            Problem(
                f"{where}.defaultVariant",
                f"{default!r} is not one of the variants ({', '.join(map(repr, variants))})",
            )
        )
    problems += _scalar_metadata(f"{where}.metadata", flag.get("metadata", {}))
    targeting = flag.get("targeting")
    if targeting not in (None, {}):
        if not isinstance(targeting, dict):
            problems.append(Problem(f"{where}.targeting", "must be a JsonLogic object"))
        else:
            problems += _check_rule(f"{where}.targeting", targeting, variants, evaluators, True)
    return problems


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "object"


def _scalar_metadata(where: str, metadata: Any) -> list[Problem]:
    if not isinstance(metadata, dict):
        return [Problem(where, "must be an object")]
    return [
        Problem(f"{where}.{k}", "metadata values must be strings, numbers or booleans")
        for k, v in metadata.items()
        if not isinstance(v, str | int | float | bool)
    ]


def _check_rule(
    where: str, rule: Any, variants: dict[str, Any], evaluators: dict[str, Any], result: bool
) -> list[Problem]:
    """Walk a JsonLogic rule; ``result`` says whether its value is what targeting returns."""
    if isinstance(rule, list):
        return [
            p
            for i, item in enumerate(rule)
            for p in _check_rule(f"{where}[{i}]", item, variants, evaluators, False)
        ]
    if not isinstance(rule, dict):
        return _check_result(where, rule, variants) if result else []
    if set(rule) == {"$ref"}:
        name = rule["$ref"]
        if name not in evaluators:
            return [Problem(where, f"$ref {name!r} is not in $evaluators")]
        return _check_rule(f"{where}($ref {name})", evaluators[name], variants, evaluators, result)
    if len(rule) != 1:
        return [Problem(where, "a JsonLogic operation has exactly one operator")]
    ((op, args),) = rule.items()
    where = f"{where}.{op}"
    if op not in OPERATORS:
        return [Problem(where, f"unknown operator {op!r}")]
    if op == "var":
        return _check_var(where, args)
    if op == "fractional":
        return _check_fractional(where, args, variants, evaluators)
    arg_list = args if isinstance(args, list) else [args]
    problems: list[Problem] = []
    if (
        op == "in"
        and len(arg_list) == 2
        and isinstance(arg_list[1], list)
        and any(isinstance(v, int | float) and not isinstance(v, bool) for v in arg_list[1])
    ):
        problems.append(
            Problem(where, 'ids in the context are strings: write "123", not 123', "warning")
        )
    for i, arg in enumerate(arg_list):
        if op in ELEMENT_SCOPED and i > 0:
            continue  # evaluated per element: its vars are not context attributes
        is_result = result and op in ("if", "?:") and (i % 2 == 1 or i == len(arg_list) - 1)
        problems += _check_rule(f"{where}[{i}]", arg, variants, evaluators, is_result)
    return problems


def _check_result(where: str, value: Any, variants: dict[str, Any]) -> list[Problem]:
    if value is None:
        return []  # null: use the default variant
    name = str(value).lower() if isinstance(value, bool) else value
    if isinstance(name, str) and name in variants:
        return []
    return [Problem(where, f"targeting returns {value!r}, which is not a variant")]


def _check_var(where: str, args: Any) -> list[Problem]:
    name = args[0] if isinstance(args, list) and args else args
    if not isinstance(name, str) or not name:
        return []
    root = name.split(".")[0]
    if root in CONTEXT_ATTRIBUTES:
        return []
    known = ", ".join(sorted(CONTEXT_ATTRIBUTES))
    return [Problem(where, f"the bot sends no attribute {name!r} (it sends {known})", "warning")]


def _check_fractional(
    where: str, args: Any, variants: dict[str, Any], evaluators: dict[str, Any]
) -> list[Problem]:
    if not isinstance(args, list) or not args:
        return [Problem(where, "needs a list of [variant, weight] buckets")]
    problems: list[Problem] = []
    buckets = args
    if not isinstance(args[0], list):
        problems += _check_rule(f"{where}[0]", args[0], variants, evaluators, False)
        buckets = args[1:]
    if not buckets:
        return [*problems, Problem(where, "has no [variant, weight] buckets")]
    total = 0
    for i, bucket in enumerate(buckets, start=len(args) - len(buckets)):
        at = f"{where}[{i}]"
        if not isinstance(bucket, list) or not 1 <= len(bucket) <= 2:
            problems.append(Problem(at, "a bucket is [variant, weight] or [variant]"))
            continue
        problems += _check_result(at, bucket[0], variants)
        weight = bucket[1] if len(bucket) == 2 else 1
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            problems.append(Problem(at, f"weight {weight!r} must be a whole number >= 0"))
            continue
        total += weight
    if not problems and total <= 0:
        problems.append(Problem(where, "the weights add up to 0: nothing can be chosen"))
    if total > MAX_WEIGHT_SUM:
        problems.append(Problem(where, f"the weights add up to more than {MAX_WEIGHT_SUM}"))
    return problems


def _flagd_accepts(data: dict[str, Any]) -> Iterator[Problem]:
    """Whatever else flagd's own loader rejects, in its words."""
    from openfeature.contrib.tools.flagd.core.model.flag_store import FlagStore
    from openfeature.exception import ParseError

    try:
        FlagStore().update(json.loads(json.dumps(data)))
    except ParseError as exc:
        yield Problem("", f"flagd rejects the file: {exc.error_message or exc}")
    except Exception as exc:
        yield Problem("", f"flagd rejects the file: {exc}")
