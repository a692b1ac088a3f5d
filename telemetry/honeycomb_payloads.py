"""The payloads Honeycomb sends the bot's webhook: one template per kind of alert.

Honeycomb's default webhook payload is documented for triggers (``id``, ``name``,
``status``, ``summary``, ``description``, ``result_url``, ``result_groups_triggered``,
``is_test``); an SLO burn alert's default differs, and the receiver needs the same
few facts from both. So ``chatops honeycomb apply`` gives the recipient a payload
template per alert type (Recipients API ``details.webhook_payloads``: ``trigger``,
``exhaustion_time``, ``budget_rate``), each producing the trigger payload's keys plus
``kind``. Values are Honeycomb's documented template variables (Go templates:
``.Name``, ``.ID``, ``.URL``, ``.Result.*``, ``.Alert.Status``, ``.Alert.Summary``,
``.Alert.Description``, ``.Alert.IsTest``), each through ``toJson`` so a quote or
newline in a name or description still makes valid JSON. Honeycomb's variable table
for burn alerts was not readable when this was written: the burn templates use the
trigger variables and the alert-level ones (docs/ops-loop.md says what to check).
"""

from __future__ import annotations

import json
from typing import Any

TRIGGER = "trigger"
EXHAUSTION_TIME = "exhaustion_time"
BUDGET_RATE = "budget_rate"
KINDS = (TRIGGER, EXHAUSTION_TIME, BUDGET_RATE)
VERSION = "chatops-v1"

# Keys every kind carries (the default trigger payload's names), and their variables.
_COMMON = {
    "id": ".ID",
    "name": ".Name",
    "status": ".Alert.Status",
    "summary": ".Alert.Summary",
    "description": ".Alert.Description",
    "is_test": ".Alert.IsTest",
}
_BY_KIND = {
    TRIGGER: {
        **_COMMON,
        "trigger_url": ".URL",
        "result_url": ".Result.URL",
        "result_groups_triggered": ".Result.GroupsTriggered",
    },
    EXHAUSTION_TIME: {**_COMMON, "url": ".URL"},
    BUDGET_RATE: {**_COMMON, "url": ".URL"},
}


def template(kind: str) -> str:
    """The JSON payload template for ``kind``: literal keys, ``{{ toJson .Var }}`` values."""
    fields = [f'  "version": {json.dumps(VERSION)}', f'  "kind": {json.dumps(kind)}']
    fields += [
        f"  {json.dumps(key)}: {{{{ toJson {var} }}}}" for key, var in _BY_KIND[kind].items()
    ]
    return "{\n" + ",\n".join(fields) + "\n}"


def webhook_payloads() -> dict[str, Any]:
    """``details.webhook_payloads`` for the bot's webhook recipient."""
    return {
        "payload_templates": {kind: {"body": template(kind)} for kind in KINDS},
        "template_variables": [],
    }
