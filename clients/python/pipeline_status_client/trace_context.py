"""W3C Trace Context on every request (docs/tracing.md, DESIGN.md "Observability"), standard library only.

A runner continues its trace into the web app by sending ``traceparent`` (and ``tracestate``):
given to the client, or read from the ``TRACEPARENT`` / ``TRACESTATE`` environment variables (the
names OpenTelemetry's environment carrier uses, e.g. set by a CI system or a parent process), or,
per request, from a ``trace_headers`` callable (with OpenTelemetry for Python:
``lambda: (lambda carrier: (inject(carrier), carrier)[1])({})``).
"""
import os
import re
from typing import Callable, Dict, Mapping, Optional

from .errors import ConfigurationError

ENV_TRACEPARENT = "TRACEPARENT"
ENV_TRACESTATE = "TRACESTATE"

#: A version-00 ``traceparent`` (https://www.w3.org/TR/trace-context/#traceparent-header).
_TRACEPARENT = re.compile(r"^00-(?!0{32})[0-9a-f]{32}-(?!0{16})[0-9a-f]{16}-[0-9a-f]{2}$")

TraceHeaders = Callable[[], Mapping[str, str]]


def resolve_trace_headers(
    traceparent: Optional[str], tracestate: Optional[str], trace_headers: Optional[TraceHeaders], warn: Callable[[str], None]
) -> Optional[Callable[[], Dict[str, str]]]:
    """The headers every request adds, or ``None`` for none.

    ``trace_headers`` wins (called per request); else ``traceparent`` (an invalid one raises
    :class:`ConfigurationError`) or ``TRACEPARENT`` (an invalid one is ignored with a warning),
    with ``tracestate`` or ``TRACESTATE``.
    """
    if trace_headers is not None:
        return lambda: {str(k).lower(): str(v) for k, v in trace_headers().items() if k.lower() in ("traceparent", "tracestate", "baggage")}
    given = traceparent is not None
    value = (traceparent if given else os.environ.get(ENV_TRACEPARENT, "")).strip().lower()  # type: ignore[union-attr]
    if not value:
        return None
    if not _TRACEPARENT.match(value):
        if given:
            raise ConfigurationError(f"traceparent must be a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>), got {traceparent!r}")
        warn(f"pipeline-status: ignoring {ENV_TRACEPARENT}={value!r}: not a W3C traceparent (00-<32 hex>-<16 hex>-<2 hex>)")
        return None
    headers = {"traceparent": value}
    state = tracestate if tracestate is not None else os.environ.get(ENV_TRACESTATE, "")
    if state.strip():
        headers["tracestate"] = state.strip()
    return lambda: dict(headers)
