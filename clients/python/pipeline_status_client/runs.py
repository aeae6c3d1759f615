"""Runs as a collection (docs/design.md): the body of ``POST /runs`` with a pipeline, tags and
metadata, and the pages of ``GET /runs`` followed by their ``nextCursor``. Standard library only.

Mirrors ``src/client/create-run.ts`` and ``src/client/run-list.ts`` of the TypeScript client.
"""
import json
import re
import urllib.parse
from datetime import datetime, timedelta
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from .contract import iso_instant

#: The most tags a run carries, and the longest tag (characters counted as UTF-16 code units, as the server counts them).
MAX_TAGS = 20
MAX_TAG_LENGTH = 128
#: The largest metadata object, in bytes of its UTF-8 JSON.
MAX_METADATA_BYTES = 16 * 1024
#: The largest page of ``GET /runs`` (the server's ``limit`` is 1 to 200, default 50).
MAX_LIST_LIMIT = 200
#: The run statuses a list may filter by.
RUN_STATUSES = ("PENDING", "PROCESSING", "COMPLETED", "FAILED", "CANCELLED")

Instant = Union[str, datetime]

#: The server's timestamp grammar (``src/contract/timestamp.ts``): RFC 3339 with the offset optional (none: UTC).
TIMESTAMP_FORMAT = "YYYY-MM-DDTHH:MM:SS[.fraction of 1 to 9 digits][Z|±HH:MM]"
_TIMESTAMP = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(Z|([+-])(\d{2}):(\d{2}))?")


def tag_length(tag: str) -> int:
    """A tag's length as the server counts it: UTF-16 code units (an emoji counts 2)."""
    return len(tag.encode("utf-16-le", "surrogatepass")) // 2


def _tag_problem(tag: object) -> Optional[str]:
    if not isinstance(tag, str) or not 1 <= tag_length(tag) <= MAX_TAG_LENGTH:
        got = f"{tag_length(tag)} characters" if isinstance(tag, str) else repr(tag)
        return f"each tag is a string of 1 to {MAX_TAG_LENGTH} characters (UTF-16 code units), got {got}"
    return None


def is_timestamp(text: str) -> bool:
    """Whether ``text`` is a timestamp the server takes: :data:`TIMESTAMP_FORMAT`, a real date and
    time (no ``:60``, no ``24:00``) whose UTC instant falls in years 1 to 9999."""
    match = _TIMESTAMP.fullmatch(text)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.groups()[:6])
    sign, offset_hours, offset_minutes = match.group(8), match.group(9), match.group(10)
    try:
        moment = datetime(year, month, day, hour, minute, second)
        if sign is not None:
            if int(offset_hours) > 23 or int(offset_minutes) > 59:
                return False
            offset = timedelta(hours=int(offset_hours), minutes=int(offset_minutes))
            moment = moment - offset if sign == "+" else moment + offset
    except (ValueError, OverflowError):
        return False
    return True


def create_run_body(run_id: Optional[str], pipeline: Optional[str], tags: Optional[Sequence[str]],
                    metadata: Optional[Mapping[str, Any]]) -> Dict[str, Any]:
    """The JSON object of ``POST /runs``: only the fields given (an older server takes ``{"id"}``
    alone). Raises ``ValueError`` naming the argument for what the server would refuse."""
    body: Dict[str, Any] = {} if run_id is None else {"id": run_id}
    if pipeline is not None:
        if not isinstance(pipeline, str) or not pipeline:
            raise ValueError(f"pipeline must be a non-empty string, got {pipeline!r}")
        body["pipeline"] = pipeline
    if tags is not None:
        tags = [tags] if isinstance(tags, str) else list(tags)
        if len(tags) > MAX_TAGS:
            raise ValueError(f"tags: at most {MAX_TAGS} tags per run, got {len(tags)}")
        for tag in tags:
            problem = _tag_problem(tag)
            if problem is not None:
                raise ValueError(f"tags: {problem}")
        body["tags"] = tags
    if metadata is not None:
        if not isinstance(metadata, Mapping):
            raise ValueError(f"metadata must be a JSON object (a dict), got {type(metadata).__name__}")
        size = len(json.dumps(dict(metadata), ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
        if size > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is {size} bytes as JSON; at most {MAX_METADATA_BYTES}")
        body["metadata"] = dict(metadata)
    return body


def _many(name: str, value: Union[None, str, Sequence[str]]) -> List[str]:
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    for item in values:
        if not isinstance(item, str) or not item:
            raise ValueError(f"{name} must be a non-empty string or a list of them, got {item!r}")
    return values


def _instant(name: str, value: Optional[Instant]) -> Optional[str]:
    if value is None:
        return None
    if isinstance(value, str):
        if not is_timestamp(value):
            raise ValueError(f"{name} must be an ISO 8601 timestamp {TIMESTAMP_FORMAT} with an offset "
                             f"(e.g. 2026-12-01T00:00:00Z; without one it is UTC), got {value!r}")
        return value
    if isinstance(value, datetime):
        return iso_instant(value)
    raise ValueError(f"{name} must be an ISO 8601 string or a datetime, got {value!r}")


def list_query(status: Union[None, str, Sequence[str]] = None, pipeline: Optional[str] = None,
               tag: Union[None, str, Sequence[str]] = None, created_after: Optional[Instant] = None,
               created_before: Optional[Instant] = None) -> List[tuple]:
    """The filters as query pairs of ``GET /runs`` and ``/runs/counts``: repeated ``status`` (any
    of them) and ``tag`` (all of them), ``createdAfter`` inclusive, ``createdBefore`` exclusive.
    A naive ``datetime`` is this machine's local time (see :func:`iso_instant`). Raises
    ``ValueError`` naming the argument for what the server would refuse, with its rules: a known
    status, a tag of 1 to 128 UTF-16 code units, a string instant in :data:`TIMESTAMP_FORMAT`."""
    statuses = _many("status", status)
    for value in statuses:
        if value not in RUN_STATUSES:
            raise ValueError(f"status must be one of {', '.join(RUN_STATUSES)}, got {value!r}")
    pairs: List[tuple] = [("status", value) for value in statuses]
    if pipeline is not None:
        pairs.append(("pipeline", _many("pipeline", pipeline)[0]))
    tags = _many("tag", tag)
    for value in tags:
        problem = _tag_problem(value)
        if problem is not None:
            raise ValueError(f"tag: {problem}")
    pairs += [("tag", value) for value in tags]
    for name, value in (("createdAfter", _instant("created_after", created_after)),
                        ("createdBefore", _instant("created_before", created_before))):
        if value is not None:
            pairs.append((name, value))
    return pairs


def check_limit(limit: Optional[int]) -> None:
    """Raises ``ValueError`` for a page size outside 1 to 200 (the server's ``limit``)."""
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIST_LIMIT):
        raise ValueError(f"limit must be a whole number from 1 to {MAX_LIST_LIMIT} (runs per page), got {limit!r}")


def iterate_runs(get: Callable[[str], Dict[str, Any]], filters: List[tuple], limit: Optional[int]) -> Iterator[Dict[str, Any]]:
    """Every run of the list, newest first, one page at a time: ``get(route)`` reads a page
    (``runs?...``); each next page is asked for with its ``nextCursor`` and the same filters,
    until ``nextCursor`` is ``null``."""
    cursor: Optional[str] = None
    while True:
        pairs = list(filters)
        if limit is not None:
            pairs.append(("limit", str(limit)))
        if cursor is not None:
            pairs.append(("cursor", cursor))
        query = urllib.parse.urlencode(pairs)
        page = get(f"runs?{query}" if query else "runs")
        for run in page.get("runs") or []:
            yield run
        following = page.get("nextCursor")
        # A cursor that does not move would repeat the same page forever.
        if not isinstance(following, str) or following == cursor:
            return
        cursor = following
