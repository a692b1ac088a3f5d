"""An OpenFeature provider for a flagd-format flag file, without flagd's provider.

flagd's own provider in file mode imports grpc at module level (about 9 MB of the
bot's memory, for a local file) and runs a thread that wakes every poll interval to
stat the file. This provider keeps only what file mode needs:

- evaluation is flagd's own core (``FlagdCore``, what flagd's in-process resolver
  evaluates with): the same targeting, ``fractional``, ``sem_ver``,
  ``starts_with``/``ends_with``, ``$ref`` evaluators and JsonLogic, and the same
  values, variants, reasons, metadata and errors (tests/unit/test_flag_file_provider.py
  compares the two);
- the file is looked at only when a flag is evaluated, at most once per
  ``poll_ms``: an ``os.stat``, and a reload only when the file changed (its
  modification or change time, size or inode). An evaluation made ``poll_ms`` or
  more after an edit sees the edit; an idle bot does no work for its flags;
- a file that cannot be loaded keeps the last good flags (as flagd does) and is
  reported once per change of the file, not once per check.

Listeners (``add_listener``) hear every event synchronously, in order, before the
evaluation that noticed the change goes on, so a caller can fail closed on a broken
edit from the very evaluation that found it. OpenFeature's own event handlers get
the same events, run later on the SDK's threads.

The provider is named ``FlagdProvider`` in its metadata (the ``feature_flag.provider.name``
of every evaluation span) because it answers exactly as flagd does; dashboards and
queries on that name keep working.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from openfeature.contrib.tools.flagd.core import FlagdCore
from openfeature.evaluation_context import EvaluationContext
from openfeature.event import EventDetails, ProviderEvent, ProviderEventDetails
from openfeature.exception import ErrorCode, ParseError, ProviderNotReadyError
from openfeature.flag_evaluation import FlagResolutionDetails, FlagValueType
from openfeature.provider import AbstractProvider, Metadata

log = logging.getLogger(__name__)

NAME = "FlagdProvider"
Listener = Callable[[EventDetails], None]
# What identifies one version of the file; None when there is no file.
Signature = tuple[int, ...] | None
_NEVER: Any = object()


class FlagFileProvider(AbstractProvider):
    """Evaluates a flagd-format JSON file with flagd's core; reloads it when it changes."""

    def __init__(
        self,
        path: Path | str,
        *,
        poll_ms: int = 500,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.path = Path(path)
        self.interval = poll_ms / 1000
        self._clock = clock
        self._core = FlagdCore()
        # Serialises checks and reloads; evaluation itself runs under the core's lock.
        self._lock = threading.Lock()
        self._next_check = 0.0
        self._seen: Signature = _NEVER
        # Why the file last could not be loaded (None: the flags are the file's).
        self.problem: str | None = None
        self._listeners: list[Listener] = []
        self._initializing = False

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener`` with every event, synchronously, in the thread that found it."""
        self._listeners.append(listener)

    def get_metadata(self) -> Metadata:
        return Metadata(name=NAME)

    def initialize(self, evaluation_context: EvaluationContext) -> None:
        """Load the file now; raise (as flagd does) when it cannot be loaded.

        The flags load as soon as the file is good: the next evaluation after it
        changes tries again.
        """
        with self._lock:
            self._initializing = True
            try:
                self._next_check = self._clock() + self.interval
                self._check()
            finally:
                self._initializing = False
        if self.problem is not None:
            raise ProviderNotReadyError(self.problem)

    def shutdown(self) -> None:
        """Stop looking at the file; the last flags still answer."""
        self._next_check = float("inf")

    def refresh(self) -> None:
        """Reload the file if it changed; looks at it at most once per ``poll_ms``."""
        if self._clock() < self._next_check:
            return
        with self._lock:
            now = self._clock()
            if now < self._next_check:
                return
            self._next_check = now + self.interval
            self._check()

    def _check(self) -> None:
        try:
            stat = os.stat(self.path)
            signature: Signature = (
                stat.st_mtime_ns,
                stat.st_ctime_ns,
                stat.st_size,
                stat.st_ino,
                stat.st_dev,
            )
        except FileNotFoundError:
            signature = None
        except OSError as exc:
            signature = (-1, exc.errno or 0)
        if signature == self._seen:
            return
        self._seen = signature
        self._load()

    def _load(self) -> None:
        try:
            data = json.loads(self.path.read_bytes())
            changed = self._core.set_flags_and_get_changed_keys(data)
        except FileNotFoundError:
            self._failed("file not found")
        except OSError as exc:
            self._failed(f"cannot read the file: {exc}")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            self._failed(f"invalid JSON: {exc}")
        except ParseError as exc:
            self._failed(f"flagd rejects the file: {exc.error_message or exc}")
        except Exception as exc:
            self._failed(f"flagd rejects the file: {exc!r}")
        else:
            recovered = self.problem is not None
            self.problem = None
            metadata = dict(self._core.get_flag_set_metadata())
            self._emit(
                ProviderEvent.PROVIDER_CONFIGURATION_CHANGED,
                ProviderEventDetails(flags_changed=changed, metadata=metadata),
            )
            if recovered or self._initializing:
                self._emit(
                    ProviderEvent.PROVIDER_READY,
                    ProviderEventDetails(message=f"loaded {self.path}"),
                )

    def _failed(self, problem: str) -> None:
        self.problem = problem
        self._emit(
            ProviderEvent.PROVIDER_ERROR,
            ProviderEventDetails(message=problem, error_code=ErrorCode.PARSE_ERROR),
        )

    def _emit(self, event: ProviderEvent, details: ProviderEventDetails) -> None:
        for listener in self._listeners:
            # A failing listener must not fail the evaluation that noticed the change.
            try:
                listener(EventDetails.from_provider_event_details(NAME, details))
            except Exception:
                log.exception("flag file listener %r failed", listener)
        # While initialising, the SDK reports READY or ERROR itself when initialize returns.
        if not self._initializing:
            self.emit(event, details)

    def resolve_boolean_details(
        self,
        flag_key: str,
        default_value: bool,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[bool]:
        self.refresh()
        return self._core.resolve_boolean_value(flag_key, default_value, evaluation_context)

    def resolve_string_details(
        self,
        flag_key: str,
        default_value: str,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[str]:
        self.refresh()
        return self._core.resolve_string_value(flag_key, default_value, evaluation_context)

    def resolve_integer_details(
        self,
        flag_key: str,
        default_value: int,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[int]:
        self.refresh()
        return self._core.resolve_integer_value(flag_key, default_value, evaluation_context)

    def resolve_float_details(
        self,
        flag_key: str,
        default_value: float,
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[float]:
        self.refresh()
        return self._core.resolve_float_value(flag_key, default_value, evaluation_context)

    def resolve_object_details(
        self,
        flag_key: str,
        default_value: Sequence[FlagValueType] | Mapping[str, FlagValueType],
        evaluation_context: EvaluationContext | None = None,
    ) -> FlagResolutionDetails[Sequence[FlagValueType] | Mapping[str, FlagValueType]]:
        self.refresh()
        return self._core.resolve_object_value(flag_key, default_value, evaluation_context)
