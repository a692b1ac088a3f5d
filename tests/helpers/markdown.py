"""What Discord's markdown would make of a message the bot sent (only what the tests ask)."""

from __future__ import annotations

import re

# A code span: a run of backticks, then anything up to a run of the same length.
_CODE = re.compile(r"(`+)(?:.+?)(?<!`)\1(?!`)", re.DOTALL)
# ``[text](url)``: the brackets and the parenthesis each unescaped.
_LINK = re.compile(r"\[((?:\\.|[^\]\\])*)\]\(\s*<?([^\s)>]+)>?[^)]*\)")


def masked_links(content: str) -> list[tuple[str, str]]:
    """The ``(text, url)`` of each masked link Discord would render in ``content``.

    Inside code nothing renders; a ``[`` after an odd number of backslashes is
    a literal bracket, as is a ``(`` after one (``]\\(`` is not a link).
    """
    outside_code = _CODE.sub(" ", content)
    found = []
    for match in _LINK.finditer(outside_code):
        before = outside_code[: match.start()]
        if (len(before) - len(before.rstrip("\\"))) % 2:
            continue
        found.append((match[1], match[2]))
    return found
