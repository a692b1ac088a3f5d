"""The process-wide in-memory exporter: every span a bot in the test process ends lands here.

``tests/conftest.py`` installs it once; the ``spans`` fixture hands it to a test
(cleared), and helpers that wait for a message's handling to end read it too.
"""

from __future__ import annotations

from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()
