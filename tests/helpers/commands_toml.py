"""A commands file with three HTTP-backed commands, for a fake operator endpoint at ``base``.

``relationships`` maps a JSON field and sends a key header, ``echo`` POSTs a body
and has a cooldown, ``plain`` answers plain text behind the ``plain-command`` flag.
Fill in with ``COMMANDS.format(base=url)``.
"""

from __future__ import annotations

COMMANDS = """
[[command]]
name = "relationships"
description = "How two people know each other."
url = "{base}/api/relationships"
query = {{ user = "{{author_id}}", target = "{{arg1}}", guild = "{{guild_id}}" }}
headers = {{ "x-functions-key" = "function-key-value" }}
timeout = 2
response = {{ type = "json", field = "result.summary" }}

[[command]]
name = "echo"
description = "Echo through a POST body."
url = "{base}/api/echo"
method = "post"
body = {{ said = "{{args}}", by = "{{author_id}}", where = {{ channel = "{{channel_id}}" }} }}
response = {{ type = "template", template = "{{by}} said {{said}} in {{where.channel}}" }}
cooldown = {{ rate = 1, per = 60 }}

[[command]]
name = "plain"
description = "Plain text answer."
url = "{base}/api/text"
flag = "plain-command"
"""
