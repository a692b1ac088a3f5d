"""Local fakes of the external services the bot calls, shaped after their documented APIs.

``chatops console`` runs them so every command answers offline; the tests use the
same ones (``tests/fakes`` re-exports them). Each binds 127.0.0.1 on a free port.
"""
