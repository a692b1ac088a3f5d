"""Helpers shared by the tests, each kept once here; fixtures live in ``conftest.py``.

- ``trace_finders``: finished spans by message, interaction, parent (no waiting)
- ``sandbox_chat``: talking to the bot through the fake Discord and waiting for the trace
- ``plain_discord_bot``: an unmodified ``commands.Bot`` against the fake
- ``flag_rules``: flag files and targeting rules
- ``commands_toml``: a commands file with HTTP-backed commands
- ``stored_spans``: real SDK spans written into a span store
- ``chatops_process``: ``chatops`` run as a separate process
- ``raw_http``: hand-written HTTP over a socket: slow, idle and half-sent clients

Test modules import from here, never from each other.
"""
