"""Pipeline tracing: CI steps as spans, CircleCI webhooks and BuildKite builds as traces.

All three derive trace and span ids from the CI system's own run ids (``ids``),
so spans sent by different processes, machines or tools join one trace, and a
re-export of the same run lands on the same ids instead of a second trace.
"""
