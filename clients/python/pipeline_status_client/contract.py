"""The parts of the pipeline-status wire contract a runner needs (docs/contract.md).

Mirrors ``src/contract`` of the TypeScript package: route paths, header names, the default
stage catalogue, the run-id rule, and how a stage's output is made storable and cut to fit.
"""
import json
import math
import re
from datetime import datetime, timedelta, timezone
from typing import Any, Dict, List, Mapping, Optional, Tuple

#: Base path of the routes on the web app. ``FRONTEND_WEBHOOK_URL`` is the origin in front of it.
BASE_PATH = "/api/pipeline"

#: Environment variable holding the web app's origin, e.g. ``https://app.example.com``.
ENV_WEBHOOK_URL = "FRONTEND_WEBHOOK_URL"
#: Environment variable holding the shared ``X-Webhook-Secret``.
ENV_WEBHOOK_SECRET = "WEBHOOK_SECRET"
#: Environment variable holding a Standard Webhooks signing secret (``whsec_<base64>`` or plain).
ENV_SIGNING_SECRET = "WEBHOOK_SIGNING_SECRET"
#: Environment variable naming the outbox directory when ``outbox_dir=`` is not given.
ENV_OUTBOX_DIR = "PIPELINE_STATUS_OUTBOX_DIR"

HEADER_SECRET = "X-Webhook-Secret"
HEADER_IDEMPOTENCY_KEY = "Idempotency-Key"
HEADER_RETRY_AFTER = "Retry-After"

#: The original five-stage pipeline, by stage number (the server's default catalogue).
DEFAULT_STAGES: Dict[int, str] = {
    1: "Input Processing",
    2: "Signal Amplification",
    3: "General Translation",
    4: "Brand Contextualization",
    5: "Opportunity Generation",
}

STAGE_STATUSES = ("PROCESSING", "COMPLETED", "FAILED", "CANCELLED")
RUN_END_STATUSES = ("COMPLETED", "FAILED", "CANCELLED")
#: Run statuses after which a run never changes its own status again.
FINAL_RUN_STATUSES = frozenset(RUN_END_STATUSES)

#: Why the server ends a live stream before its run's ``end`` (the comment ``: closed <cause> [<runId>]``),
#: as ``STREAM_CLOSED_CAUSES`` of src/contract/live-status.ts; each cause maps to whether it stops a
#: watch for good whatever the credential (a reconnect cannot help). ``credential-expired`` stops only
#: a read token's stream (:func:`closed_stops`). Both sides test against tests/stream_closed.json.
STREAM_CLOSED_CAUSES: Dict[str, bool] = {
    "not-admitted": True,
    "update-unavailable": False,
    "credential-expired": False,
    "deleted": True,
    "membership-failed": False,
}
_CLOSED_COMMENT = re.compile(r"^\s*closed\s+(\S+)(?:\s+(\S+))?\s*$")
_READ_TOKEN = re.compile(r"^(Bearer\s+)?psrt1\.", re.IGNORECASE)


def parse_stream_closed_comment(comment: str) -> Optional[Tuple[str, Optional[str]]]:
    """``(cause, run_id)`` of a ``: closed <cause> [<runId>]`` comment (``comment``: the text after
    the ``:``; ``run_id`` ``None`` where the server named no run); ``None`` for any other comment,
    a cause not in :data:`STREAM_CLOSED_CAUSES` included (a later server's: that end is then a drop
    like any other). As ``parseStreamClosedComment`` of the TypeScript contract."""
    match = _CLOSED_COMMENT.match(comment)
    if match is None or match.group(1) not in STREAM_CLOSED_CAUSES:
        return None
    return match.group(1), match.group(2)


def closed_stops(cause: str, authorization: Optional[str]) -> bool:
    """Whether a ``: closed`` cause ends the following of the run at once (reconnecting cannot
    help): ``deleted`` and ``not-admitted`` always; ``credential-expired`` only with a read token
    (``psrt1.…``, the request's ``Authorization``), which is refused again for sure. As
    ``closedStops`` of the TypeScript contract: the one rule of every subscriber."""
    if STREAM_CLOSED_CAUSES.get(cause, False):
        return True
    return cause == "credential-expired" and authorization is not None and _READ_TOKEN.match(authorization) is not None


#: Ends an output the client cut to fit the server's body limit (the same marker as the
#: TypeScript client's ``TRUNCATION_MARKER``); it appears once, at the very end.
TRUNCATION_MARKER = "\n\u2026[truncated by pipeline-status-sdk]"
#: What replaces each character PostgreSQL cannot store (NUL, a lone UTF-16 surrogate).
REPLACEMENT_CHARACTER = "\ufffd"

_RUN_ID = re.compile(r"[A-Za-z0-9._:~-]{1,128}")
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def parse_secret_list(value: Optional[str]) -> List[str]:
    """``WEBHOOK_SECRET`` read as the server reads it: a comma-separated list (``new,old`` while a
    secret is rotated), each entry stripped, empty entries dropped. The runner sends the first."""
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def is_valid_run_id(run_id: object) -> bool:
    """Whether ``run_id`` follows the contract's rule: 1 to 128 characters of
    ``A-Z a-z 0-9 . _ ~ : -``, not made of dots only (a URL path segment carries it unchanged)."""
    return isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) is not None and set(run_id) != {"."}


def route_path(route: str, run_id: Optional[str] = None) -> str:
    """The route after the base path, without the leading slash, the run id unencoded:
    ``runs``, ``run_1/stage-update``, ``run_1/complete``, ``run_1/status``. This is also the
    ``<route>`` part of a signed ``webhook-id`` (docs/security.md)."""
    return "runs" if route == "runs" else f"{run_id}/{route}"


def utc_timestamp(moment: Optional[datetime] = None) -> str:
    """An ISO 8601 UTC timestamp with microseconds, as the original runner sends
    (``2025-10-25T14:03:11.123456Z``); ``moment`` defaults to now. A naive ``moment`` is local
    time, as in :func:`iso_instant`."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


#: The contract's timestamp grammar (src/contract/timestamp.ts): RFC 3339 with the offset optional.
TIMESTAMP_FORMAT = "YYYY-MM-DDTHH:MM:SS[.fraction of 1 to 9 digits][Z|±HH:MM]"
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(Z)|([+-])(\d{2}):(\d{2}))?", re.ASCII)


def timestamp_problem(value: str) -> Optional[str]:
    """Why the server would refuse ``value`` as a contract timestamp (``completedAt``), in its
    words, or ``None``: the grammar :data:`TIMESTAMP_FORMAT` with a real date and time (no leap
    second, no ``24:00``), its UTC instant in the years 0001 to 9999."""
    match = _TIMESTAMP.fullmatch(value)
    if match is None:
        return f"must be a date-time written {TIMESTAMP_FORMAT}, with a real date and time"
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    fraction, zulu, sign, offset_hours, offset_minutes = match.groups()[6:]
    try:
        # Year 0 is a calendar date (a leap year, as 2000) but out of range: said as such below.
        moment = datetime(year or 2000, month, day, hour, minute, second, int((fraction or "0")[:3].ljust(3, "0")) * 1000)
    except ValueError:
        return f"must be a date-time written {TIMESTAMP_FORMAT}, with a real date and time"
    offset = 0
    if zulu is None and sign is not None:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            return f"must be a date-time written {TIMESTAMP_FORMAT}, with a real date and time"
        offset = (-1 if sign == "-" else 1) * (int(offset_hours) * 60 + int(offset_minutes))
    try:
        utc = moment - timedelta(minutes=offset)
    except OverflowError:
        return "must name an instant in the years 0001 to 9999 UTC"
    # Year 0 was read as 2000 (the same leap rule): only a negative offset that carries it into
    # the next year (2001, that is year 1) names an instant in range, as the server reads it.
    if year == 0 and utc.year != 2001:
        return "must name an instant in the years 0001 to 9999 UTC"
    return None


def iso_instant(moment: datetime) -> str:
    """``moment`` as the contract's instant: ISO 8601 in UTC with milliseconds and ``Z``
    (``2025-10-25T14:03:11.123Z``), the way ``Date.toISOString()`` writes it. An aware datetime is
    converted to UTC; a *naive* one is taken as this machine's local time (Python's own rule for
    ``datetime.astimezone()``), so pass an aware datetime when the runner's clock zone is not
    the zone its datetimes were made in. Microseconds are truncated to milliseconds. The server
    clamps an instant that is skewed beyond its ``clockSkewToleranceMs`` (docs/operations.md)."""
    utc = moment.astimezone(timezone.utc)
    return utc.strftime("%Y-%m-%dT%H:%M:%S.") + f"{utc.microsecond // 1000:03d}Z"


def to_storable_text(text: str) -> Tuple[str, int]:
    """``text`` with every character PostgreSQL cannot store replaced by U+FFFD, and how many
    were replaced. NUL and lone surrogates are replaced; a surrogate *pair* (two code points that
    JavaScript would read as one character, e.g. ``"\\ud83d\\ude00"``) is joined into that
    character first, as the TypeScript client sees it."""
    if not _UNSTORABLE.search(text):
        return text, 0
    joined = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "surrogatepass")
    count = len(_UNSTORABLE.findall(joined))
    return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, joined), count


def json_safe(value: Any) -> Any:
    """``value`` as JSON can carry it, the way ``JSON.stringify`` writes it in the TypeScript
    client: every NaN and ±Infinity float (in dicts, lists and tuples, at any depth) becomes
    ``None`` (``null``); ``json.dumps`` alone would write ``NaN``, which is not JSON and which the
    server refuses. Every ``datetime`` becomes its :func:`iso_instant` string (UTC, milliseconds,
    ``Z``; a naive one is taken as local time). Other values are returned as they are. Raises
    ``ValueError`` for a circular container, as ``json.dumps`` does. The one rule for every body
    the client sends (outputs, completion results and ``completedAt``, progress, heartbeats)."""
    return _json_safe(value, set())


def _json_safe(value: Any, active: set) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, datetime):
        return iso_instant(value)
    if isinstance(value, (dict, list, tuple)):
        if id(value) in active:
            raise ValueError("Circular reference detected")
        active.add(id(value))
        try:
            if isinstance(value, dict):
                return {key: _json_safe(item, active) for key, item in value.items()}
            return [_json_safe(item, active) for item in value]
        finally:
            active.discard(id(value))
    return value


def encode_json(body: Mapping[str, Any]) -> bytes:
    """The exact bytes the client sends (and signs): compact JSON in UTF-8, NaN and ±Infinity
    written ``null``, datetimes as UTC ISO 8601 instants (:func:`json_safe`). Raises ``TypeError`` for a value JSON cannot hold
    (``bytes``, an object) and ``ValueError`` for a circular container."""
    return json.dumps(json_safe(body), ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


#: What an update did (the contract's ``UpdateOutcome``).
UPDATE_OUTCOMES = ("applied", "duplicate", "stale", "conflict")
#: A run's statuses (the contract's ``RunStatus``).
RUN_STATUSES = ("PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED")


def _is_int(value: Any) -> bool:
    """A JSON number that is an integer (``5`` or ``5.0``), not a boolean."""
    return not isinstance(value, bool) and (isinstance(value, int) or (isinstance(value, float) and value.is_integer()))


#: The run's members as the contract's ``PipelineRunRecord`` has them: whether each may be
#: absent (a server older than it sends none; the TypeScript schema gives a default) and which
#: values it takes.
_RUN_MEMBERS: Dict[str, Tuple[bool, Any]] = {
    "id": (False, lambda v: isinstance(v, str)),
    "status": (False, lambda v: v in RUN_STATUSES),
    "error": (False, lambda v: v is None or isinstance(v, str)),
    "completedAt": (False, lambda v: v is None or isinstance(v, str)),
    "completionReceivedAt": (False, lambda v: v is None or isinstance(v, str)),
    "createdAt": (False, lambda v: isinstance(v, str)),
    "updatedAt": (False, lambda v: isinstance(v, str)),
    "lastActivityAt": (False, lambda v: v is None or isinstance(v, str)),
    "heartbeatIntervalMs": (False, lambda v: v is None or _is_int(v)),
    "pipeline": (True, lambda v: isinstance(v, str)),
    "tags": (True, lambda v: isinstance(v, list) and all(isinstance(tag, str) for tag in v)),
    "metadata": (True, lambda v: isinstance(v, dict)),
    "startedAt": (True, lambda v: v is None or isinstance(v, str)),
}


def is_run_record(run: Any) -> bool:
    """Whether ``run`` has the shape of the contract's ``PipelineRunRecord`` (other members are
    ignored, as the TypeScript schema strips them)."""
    return isinstance(run, dict) and all(
        (optional and name not in run) or (name in run and valid(run[name])) for name, (optional, valid) in _RUN_MEMBERS.items()
    )


def is_complete_run_response(answer: Any) -> bool:
    """Whether ``answer`` has the shape of the contract's ``CompleteRunResponse`` (the answer to
    ``/complete``): an ``outcome`` of :data:`UPDATE_OUTCOMES` and the ``run`` as stored."""
    return isinstance(answer, dict) and answer.get("outcome") in UPDATE_OUTCOMES and is_run_record(answer.get("run"))


#: The longest ``progress.message``, in UTF-16 code units (the server's ``MAX_PROGRESS_MESSAGE_LENGTH``).
MAX_PROGRESS_MESSAGE_LENGTH = 500


def progress_problem(progress: Mapping[str, Any]) -> Optional[str]:
    """Why ``progress`` (``current``, ``total``, ``percent``, ``message``) breaks the contract's
    progress rules (the server would refuse it with 400), or ``None``. NaN and ±Infinity are
    refused, as the TypeScript client refuses them: never sent, never silently left out."""
    for key in ("current", "total", "percent"):
        value = progress.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return f"progress.{key} must be a number, got {type(value).__name__}"
        if not math.isfinite(value):
            return f"progress.{key} must be a finite number, got {value!r}"
        if value < 0 or (key == "percent" and value > 100):
            return f"progress.{key} must be {'0 to 100' if key == 'percent' else 'non-negative'}, got {value!r}"
    current, total = progress.get("current"), progress.get("total")
    if isinstance(current, (int, float)) and isinstance(total, (int, float)) and current > total:
        return f"progress.current ({current!r}) must not exceed progress.total ({total!r})"
    message = progress.get("message")
    if message is not None:
        if not isinstance(message, str):
            return f"progress.message must be a string, got {type(message).__name__}"
        if len(message.encode("utf-16-le", "surrogatepass")) // 2 > MAX_PROGRESS_MESSAGE_LENGTH:
            return f"progress.message must be at most {MAX_PROGRESS_MESSAGE_LENGTH} characters"
    return None


def fit_stage_update(body: Mapping[str, Any], max_bytes: int) -> Optional[Tuple[Dict[str, Any], int, int]]:
    """A copy of the stage-update ``body`` whose ``output`` is cut so that the whole encoded body
    is at most ``max_bytes`` bytes, ending with :data:`TRUNCATION_MARKER` once; with the output's
    UTF-8 size before and after, in bytes. ``None`` when it cannot fit (no output, or the rest of
    the body alone is too large) or would not get smaller."""
    output = body.get("output")
    if not isinstance(output, str):
        return None
    original = output[: -len(TRUNCATION_MARKER)] if output.endswith(TRUNCATION_MARKER) else output

    def size(text: str) -> int:
        return len(encode_json({**body, "output": text}))

    before = size(output)
    if size(TRUNCATION_MARKER) > max_bytes:
        return None
    low, high = 0, len(original)
    while low < high:  # the largest prefix that fits; the size grows with the prefix
        middle = (low + high + 1) // 2
        if size(original[:middle] + TRUNCATION_MARKER) <= max_bytes:
            low = middle
        else:
            high = middle - 1
    cut = original[:low] + TRUNCATION_MARKER
    if size(cut) >= before:
        return None
    return {**body, "output": cut}, len(original.encode("utf-8", "surrogatepass")), len(cut.encode("utf-8"))
