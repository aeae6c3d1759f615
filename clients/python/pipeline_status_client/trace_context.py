"""W3C Trace Context on every request (docs/tracing.md, DESIGN.md "Observability"), standard library only.

A runner continues its trace into the web app by sending ``traceparent`` (and ``tracestate``):
given to the client, or read from the ``TRACEPARENT`` / ``TRACESTATE`` environment variables (the
names OpenTelemetry's environment carrier uses, e.g. set by a CI system or a parent process), or,
per request, from a ``trace_headers`` callable (with OpenTelemetry for Python:
``lambda: (lambda carrier: (inject(carrier), carrier)[1])({})``).

Instrumentation never fails a request: a ``trace_headers`` callable that raises, returns no
mapping, or returns a bad value is ignored for that request (which goes out without trace
headers), with one warning per cause per client.
"""
import os
import re
import threading
from typing import Callable, Dict, Mapping, Optional, Set

from .errors import ConfigurationError

ENV_TRACEPARENT = "TRACEPARENT"
ENV_TRACESTATE = "TRACESTATE"

#: The first 55 characters of a ``traceparent`` (https://www.w3.org/TR/trace-context/#traceparent-header):
#: lowercase hex fields; version ``ff`` is invalid; version ``00`` has exactly these fields, a later
#: version may add ``-…`` fields after the flags (W3C "Versioning of traceparent").
_TRACEPARENT = re.compile(r"^(?!ff)([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-[\x20-\x7e]*)?\Z")
_FORMAT = "<2 hex>-<32 hex>-<16 hex>-<2 hex>, lowercase, version not ff"

TraceHeaders = Callable[[], Mapping[str, str]]


def traceparent_problem(value: str) -> Optional[str]:
    """Why ``value`` is not a valid W3C ``traceparent``, or ``None`` when it is one."""
    match = _TRACEPARENT.match(value)
    if not match or (match.group(1) == "00" and match.group(5) is not None):
        return f"not a W3C traceparent ({_FORMAT})"
    if match.group(2) == "0" * 32:
        return "its trace id is all zeros (invalid per W3C Trace Context)"
    if match.group(3) == "0" * 16:
        return "its parent id is all zeros (invalid per W3C Trace Context)"
    return None


class _PerRequest:
    """``trace_headers`` called before each request, made safe: any failure gives ``{}`` and one
    warning per cause (the warning names the cause and the fix)."""

    def __init__(self, trace_headers: TraceHeaders, warn: Callable[[str], None]) -> None:
        self._trace_headers = trace_headers
        self._warn = warn
        self._warned: Set[str] = set()
        self._lock = threading.Lock()

    def _ignore(self, cause: str, message: str) -> Dict[str, str]:
        with self._lock:
            first = cause not in self._warned
            self._warned.add(cause)
        if first:
            self._warn(f"pipeline-status: trace_headers {message}; requests go out without trace headers "
                       "while it does (logged once)")
        return {}

    def __call__(self) -> Dict[str, str]:
        try:
            given = self._trace_headers()
        except Exception as error:  # noqa: BLE001 - instrumentation never fails a request
            return self._ignore("raised", f"raised {type(error).__name__}: {error}; make it return a dict and not raise")
        if not isinstance(given, Mapping):
            return self._ignore("not a mapping", f"returned {type(given).__name__}, not a mapping; make it return a dict "
                                "of header names to strings (an empty one for none)")
        headers: Dict[str, str] = {}
        for key, value in given.items():
            name = str(key).lower()
            if name not in ("traceparent", "tracestate", "baggage"):
                continue
            if not isinstance(value, str) or "\r" in value or "\n" in value or "\0" in value:
                return self._ignore("bad value", f"returned a {name} that is not a one-line string ({value!r}); "
                                    "return header values as strings without CR, LF or NUL")
            headers[name] = value.strip()
        if "traceparent" in headers:
            problem = traceparent_problem(headers["traceparent"])
            if problem is not None:
                return self._ignore("bad traceparent", f"returned traceparent={headers['traceparent']!r}: {problem}; "
                                    "return the traceparent your tracer injects")
        return headers


def resolve_trace_headers(
    traceparent: Optional[str], tracestate: Optional[str], trace_headers: Optional[TraceHeaders], warn: Callable[[str], None]
) -> Optional[Callable[[], Dict[str, str]]]:
    """The headers every request adds, or ``None`` for none.

    ``trace_headers`` wins (called per request; never raises: see the module's docstring); else
    ``traceparent`` (an invalid one raises :class:`ConfigurationError`) or ``TRACEPARENT`` (an
    invalid one is ignored with a warning), with ``tracestate`` or ``TRACESTATE``. Valid is W3C
    Trace Context's rule: lowercase hex, no all-zero ids, a version other than ``00`` read by its
    first 55 characters.
    """
    if trace_headers is not None:
        return _PerRequest(trace_headers, warn)
    given = traceparent is not None
    value = (traceparent if given else os.environ.get(ENV_TRACEPARENT, "")).strip()  # type: ignore[union-attr]
    if not value:
        return None
    problem = traceparent_problem(value)
    if problem is not None:
        if given:
            raise ConfigurationError(f"traceparent must be a W3C traceparent, got {traceparent!r}: {problem}")
        warn(f"pipeline-status: ignoring {ENV_TRACEPARENT}={value!r}: {problem}")
        return None
    headers = {"traceparent": value}
    state = tracestate if tracestate is not None else os.environ.get(ENV_TRACESTATE, "")
    if state.strip():
        headers["tracestate"] = state.strip()
    return lambda: dict(headers)
