"""Flag files as flagd reads them, and the targeting rules the tests use."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

IS_ADMIN = {"==": [{"var": "admin"}, True]}


def boolean_flag(rule: Any, **metadata: Any) -> dict[str, Any]:
    """A boolean flag that is on where ``rule`` holds, off elsewhere."""
    flag: dict[str, Any] = {
        "state": "ENABLED",
        "variants": {"on": True, "off": False},
        "defaultVariant": "off",
        "targeting": {"if": [rule, "on", "off"]},
    }
    if metadata:
        flag["metadata"] = metadata
    return flag


def users(*ids: Any) -> dict[str, Any]:
    """A rule that holds for these user ids."""
    return {"in": [{"var": "targetingKey"}, [str(i) for i in ids]]}


def write_flags(path: Path, flags: dict[str, Any], later: float = 5) -> None:
    """Write a flag file and move its mtime forward, so the poller sees a change at once."""
    path.write_text(json.dumps({"flags": flags}))
    mtime = time.time() + later
    os.utime(path, (mtime, mtime))
