"""Evaluate an ARM template offline: what ``main.json`` would deploy for given parameters.

Only the template functions ``main.json`` uses, with ARM's semantics (``if`` evaluates only
the branch it takes; ``format`` is .NET's, ``{{`` a literal brace). Runtime values that
only Azure knows (``reference``, ``resourceId``, ``guid``, ``subscription``) become stable
placeholder strings, so a test can still see where they go. Copy loops (variables, a
resource's properties, outputs) are expanded. Not a validator of ARM: a way to read the
hand-written JSON the way ARM would, where no Bicep compiler or Azure is reachable.
"""

from __future__ import annotations

import base64
import json
import re
from collections.abc import Callable, Mapping
from typing import Any

TOKEN = re.compile(
    r"\s*(?:(?P<str>'(?:[^']|'')*')|(?P<num>-?\d+)|(?P<name>[A-Za-z_][A-Za-z0-9_]*)|(?P<sym>[(),.\[\]]))"
)


class Template:
    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, Any],
        *,
        resource_group: Mapping[str, Any] | None = None,
    ) -> None:
        self.template = template
        self.resource_group = {
            "id": "/subscriptions/SUB/resourceGroups/rg",
            "name": "rg",
            "location": "westeurope",
            **(resource_group or {}),
        }
        self.params: dict[str, Any] = {}
        for name, spec in template["parameters"].items():
            if name in parameters:
                value = parameters[name]
            elif "defaultValue" in spec:
                value = self.value(spec["defaultValue"])
            else:
                raise KeyError(f"parameter {name} has no value")
            allowed = spec.get("allowedValues")
            if allowed is not None and value not in allowed:
                raise ValueError(f"{name}={value!r} is not one of {allowed}")
            if "minValue" in spec and value < spec["minValue"]:
                raise ValueError(f"{name}={value!r} is below {spec['minValue']}")
            self.params[name] = value
        self._vars: dict[str, Any] = {}
        self._copy: dict[str, int] = {}
        self._lambda: dict[str, Any] = {}

    # -- public -------------------------------------------------------------

    def variable(self, name: str) -> Any:
        if name not in self._vars:
            variables = self.template["variables"]
            loops = {loop["name"]: loop for loop in variables.get("copy", [])}
            if name in loops:
                self._vars[name] = self._expand(loops[name], name)
            else:
                self._vars[name] = self.value(variables[name])
        return self._vars[name]

    def resource(self, kind: str) -> dict[str, Any]:
        (found,) = [r for r in self.template["resources"] if r["type"] == kind]
        return self.value(found)  # type: ignore[no-any-return]

    def deployed(self, kind: str) -> bool:
        (found,) = [r for r in self.template["resources"] if r["type"] == kind]
        return bool(self.value(found.get("condition", True)))

    def resources(self, kind: str) -> list[dict[str, Any]]:
        return [self.value(r) for r in self.template["resources"] if r["type"] == kind]

    def output(self, name: str) -> Any:
        spec = self.template["outputs"][name]
        if "copy" in spec:
            return self._expand(spec["copy"], "")
        return self.value(spec["value"])

    # -- evaluation ---------------------------------------------------------------

    def value(self, node: Any) -> Any:
        if isinstance(node, str):
            if node.startswith("[[") or not (node.startswith("[") and node.endswith("]")):
                return node
            return self.expression(node[1:-1])
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if isinstance(node, dict):
            out: dict[str, Any] = {}
            for key, item in node.items():
                if key == "copy" and isinstance(item, list):
                    for loop in item:
                        out[loop["name"]] = self._expand(loop, loop["name"])
                    continue
                out[self.value(key)] = self.value(item)
            return out
        return node

    def _expand(self, loop: Mapping[str, Any], name: str) -> list[Any]:
        count = self.value(loop["count"])
        items = []
        for index in range(count):
            saved = self._copy.get(name)
            self._copy[name] = index
            try:
                items.append(self.value(loop["input"]))
            finally:
                if saved is None:
                    self._copy.pop(name, None)
                else:
                    self._copy[name] = saved
        return items

    def expression(self, text: str) -> Any:
        tokens = [(m.lastgroup, m.group(m.lastgroup or "")) for m in TOKEN.finditer(text)]
        if re.sub(r"\s+", "", "".join(t for _, t in tokens)) != re.sub(r"\s+", "", text):
            raise ValueError(f"cannot read expression: {text}")
        tree, rest = _parse(tokens)
        if rest:
            raise ValueError(f"trailing tokens in {text}: {rest}")
        return self._eval(tree)

    def _eval(self, node: Any) -> Any:
        kind = node[0]
        if kind == "lit":
            return node[1]
        if kind == "call":
            return self._call(node[1], node[2])
        if kind == "prop":
            base = self._eval(node[1])
            return base[node[2]] if isinstance(base, dict) else f"{base}.{node[2]}"
        if kind == "index":
            base, key = self._eval(node[1]), self._eval(node[2])
            return base[key]
        raise ValueError(node)

    def _call(self, name: str, args: list[Any]) -> Any:
        lazy: dict[str, Callable[[], Any]] = {
            "if": lambda: self._eval(args[1]) if self._eval(args[0]) else self._eval(args[2]),
            "map": lambda: self._map(args),
        }
        if name in lazy:
            return lazy[name]()
        if name == "lambda":
            return ("lambda", self._eval(args[0]), args[1])
        values = [self._eval(a) for a in args]
        return _FUNCTIONS[name](self, *values)

    def _map(self, args: list[Any]) -> list[Any]:
        items = self._eval(args[0])
        _, var, body = self._eval(args[1])
        out = []
        for item in items:
            self._lambda[var] = item
            out.append(self._eval(body))
        return out


def _parse(tokens: list[tuple[str | None, str]]) -> tuple[Any, list[tuple[str | None, str]]]:
    kind, text = tokens[0]
    rest = tokens[1:]
    if kind == "str":
        node: Any = ("lit", text[1:-1].replace("''", "'"))
    elif kind == "num":
        node = ("lit", int(text))
    elif kind == "name":
        assert rest and rest[0][1] == "(", f"bare name {text}"
        rest = rest[1:]
        args = []
        while rest[0][1] != ")":
            arg, rest = _parse(rest)
            args.append(arg)
            if rest[0][1] == ",":
                rest = rest[1:]
        rest = rest[1:]
        node = ("call", text, args)
    else:
        raise ValueError(f"unexpected {text}")
    while rest and rest[0][1] in (".", "["):
        if rest[0][1] == ".":
            node = ("prop", node, rest[1][1])
            rest = rest[2:]
        else:
            key, rest = _parse(rest[1:])
            assert rest[0][1] == "]"
            node = ("index", node, key)
            rest = rest[1:]
    return node, rest


def _format(_: Template, pattern: str, *args: Any) -> str:
    def field(match: re.Match[str]) -> str:
        text = match.group(0)
        if text == "{{":
            return "{"
        if text == "}}":
            return "}"
        return _string(args[int(match.group(1))])

    return re.sub(r"\{\{|\}\}|\{(\d+)\}", field, pattern)


def _string(value: Any) -> str:
    if isinstance(value, bool):
        return "True" if value else "False"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _min(_: Template, *values: int) -> int:
    return min(values)


_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "parameters": lambda t, name: t.params[name],
    "variables": lambda t, name: t.variable(name),
    "copyIndex": lambda t, name="": t._copy[name],
    "lambdaVariables": lambda t, name: t._lambda[name],
    "createArray": lambda t, *items: list(items),
    "createObject": lambda t, *kv: dict(zip(kv[::2], kv[1::2], strict=True)),
    "concat": lambda t, *parts: (
        "".join(map(str, parts))
        if parts and isinstance(parts[0], str)
        else [item for part in parts for item in part]
    ),
    "empty": lambda t, value: not value,
    "equals": lambda t, a, b: a == b,
    "less": lambda t, a, b: a < b,
    "and": lambda t, *values: all(values),
    "or": lambda t, *values: any(values),
    "not": lambda t, value: not value,
    "true": lambda t: True,
    "false": lambda t: False,
    "add": lambda t, a, b: a + b,
    "sub": lambda t, a, b: a - b,
    "mul": lambda t, a, b: a * b,
    "div": lambda t, a, b: a // b,
    "min": _min,
    "range": lambda t, start, count: (
        list(range(start, start + count))
        if count >= 0
        else (_ for _ in ()).throw(ValueError(f"range count {count} < 0"))
    ),
    "length": lambda t, value: len(value),
    "join": lambda t, items, sep: sep.join(items),
    "string": lambda t, value: _string(value),
    "format": _format,
    "json": lambda t, text: json.loads(text),
    "base64": lambda t, text: base64.b64encode(text.encode()).decode(),
    "coalesce": lambda t, *values: next((v for v in values if v is not None), None),
    "tryGet": lambda t, obj, key: obj.get(key) if isinstance(obj, dict) else None,
    "resourceGroup": lambda t: t.resource_group,
    "subscription": lambda t: {"subscriptionId": "SUB", "id": "/subscriptions/SUB"},
    "resourceId": lambda t, kind, *names: f"<resourceId {kind}/{'/'.join(names)}>",
    "reference": lambda t, rid, *_: {
        "clientId": f"<clientId of {rid}>",
        "principalId": f"<principalId of {rid}>",
        "ipAddress": {"fqdn": f"<fqdn of {rid}>"},
    },
    "guid": lambda t, *parts: "<guid " + "|".join(map(str, parts)) + ">",
}
