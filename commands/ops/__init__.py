"""The ops loop (issue 19, docs/ops-loop.md): the audit channel, ``!trace``, the container watch."""
