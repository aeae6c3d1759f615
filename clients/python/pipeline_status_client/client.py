"""``PrismaAPIClient``: the original Python runner's client, with the same constructor, method
names, arguments and ``bool`` results, upgraded with retries, signing and a durable outbox."""
import json
import logging
import math
import os
import re
import socket
import threading
import time
import urllib.parse
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable, Dict, Iterator, List, Mapping, Optional, Sequence, Set, Tuple, Union

from .contract import (
    BASE_PATH,
    DEFAULT_STAGES,
    ENV_OUTBOX_DIR,
    ENV_SIGNING_SECRET,
    ENV_WEBHOOK_SECRET,
    ENV_WEBHOOK_URL,
    FINAL_RUN_STATUSES,
    RUN_END_STATUSES,
    encode_json,
    fit_stage_update,
    is_complete_run_response,
    is_valid_run_id,
    json_safe,
    progress_problem,
    parse_secret_list,
    route_path,
    timestamp_problem,
    to_storable_text,
    utc_timestamp,
)
from .errors import CatalogueMismatchError, ClientClosedError, ConfigurationError, InvalidRunIdError, PipelineStatusError, StatusHttpError, StatusNetworkError
from .outbox import DeadLetter, Outbox, OutboxEntry
from .recent import RecentRuns
from .runs import check_limit, create_run_body, iterate_runs, list_query
from .restart_attempts import InheritedStages, inherited_stages, not_dead_lettered, stages_left_processing
from .retry import PERMANENT_STATUSES, RetryPolicy, describe_retry, is_auth_refusal, is_retriable
from .run_watch import DEFAULT_POLL_INTERVAL, RunWatch
from .stage_retry import Backoff, RunDeletedError, RunFinishedElsewhereError, last_error_of, wait_seconds
from .stream_output import StageOutputStream
from .signing import decode_signing_secret
from .trace_context import TraceHeaders, resolve_trace_headers
from .transport import Request, Transport, UnreadableAnswer

#: The default maximum age of a queued update: 72 hours from its first attempt, in seconds.
DEFAULT_MAX_AGE = 72 * 60 * 60
#: The default wait between attempts of an update refused with 401/403, in seconds.
DEFAULT_SLOW_RETRY_INTERVAL = 60.0

_log = logging.getLogger("pipeline_status_client")


@dataclass(frozen=True)
class AlteredOutput:
    """A stage output the client changed so that the stage's status is stored (issue 9 item 3).

    ``kind`` is ``"unserialisable"`` (the output could not become JSON, e.g. ``bytes``, an
    object or a circular list; :data:`UNSERIALISABLE_OUTPUT_PREFIX` placeholder
    ``[output not serialisable as JSON: <reason>]`` was sent instead; ``reason`` says why),
    ``"replaced"`` (characters PostgreSQL cannot store, NUL and lone UTF-16
    surrogates, replaced with U+FFFD; ``replaced_characters`` says how many) or ``"truncated"``
    (the server refused the body as too large, 413, and the output was cut to fit and ended with
    :data:`TRUNCATION_MARKER`; ``bytes_before`` and ``bytes_after`` are the output's UTF-8 sizes,
    ``limit`` the body limit in bytes the server stated, ``None`` when it stated none).
    ``description`` says it in one line for people.
    """

    run_id: str
    stage_number: Optional[int]
    kind: str
    description: str
    replaced_characters: int = 0
    bytes_before: Optional[int] = None
    bytes_after: Optional[int] = None
    limit: Optional[int] = None
    reason: Optional[str] = None


@dataclass(frozen=True)
class Undelivered:
    """What this client has not delivered (:meth:`PrismaAPIClient.undelivered`).

    ``queued``: updates waiting in the outbox (delivered later, by this process or the next one
    using the directory). ``dead_letters``: updates no retry can deliver, kept in the outbox.
    ``failed``: one line per update that is lost (no outbox, or not sendable: a stage outside the
    catalogue, a bad run id, a completion that is not JSON), since this client was made.
    ``superseded``: updates the server refused because their run ended elsewhere (cancelled,
    swept, completed by someone else) while they waited in the outbox; kept for inspection, not
    undelivered (:attr:`all_delivered` ignores them).
    """

    queued: int
    dead_letters: List[DeadLetter]
    failed: List[str]
    superseded: List[DeadLetter] = field(default_factory=list)

    @property
    def all_delivered(self) -> bool:
        """Whether every update was delivered: nothing queued, dead-lettered or lost."""
        return self.queued == 0 and not self.dead_letters and not self.failed


@dataclass(frozen=True)
class QueuedCompletion:
    """How a completion (``complete_run``) that waited in the outbox came out, once it left it
    (``on_queued_completion``; the TypeScript client's ``QueuedCompletionEvent``).

    ``outcome``: ``"applied"`` (stored; its results reached the app's ``onRunCompleted`` hook),
    ``"duplicate"`` (delivered, but the run's completion had already been received: another
    party's ``/complete`` came while this one waited, and the hook ran with those results, not
    these; also logged as a warning; unless an attempt of this one got no definite answer: see
    ``unanswered_attempt``), ``"dead-lettered"`` (refused for good or older than ``max_age``;
    kept in the outbox), ``"superseded"`` (the run ended elsewhere while it waited; not
    stored) or ``"unknown"`` (the server accepted it with a 2xx whose answer is not JSON or does
    not match the contract, a proxy's page or a server of another version: whether its results
    reached the hook cannot be read; also logged as an error). ``answer`` is the server's answer
    for ``applied`` and ``duplicate``; ``reason`` says why for the others (for ``unknown``, which
    of the two).

    ``unanswered_attempt``: ``True`` with ``outcome`` ``"duplicate"`` when an earlier attempt of
    this completion got no definite answer (a timeout, a reset, a gateway's 502/504; kept in the
    outbox across processes). The server may have received that attempt, so the ``duplicate``
    may be its answer to this very completion, whose results then reached the hook once; or
    another party's ``/complete`` came first, and they did not. The warning says both (and the
    cause, when this process saw it). The TypeScript ``unansweredAttempt`` is that cause; the
    outbox keeps only that there was one.

    ``earlier_process``: ``True`` for a completion an earlier process left in the outbox
    directory (queued before this client opened it, delivered by this client), ``False`` for one
    this client queued.
    """

    run_id: str
    idempotency_key: str
    outcome: str
    answer: Optional[Dict[str, Any]] = None
    reason: Optional[str] = None
    unanswered_attempt: bool = False
    earlier_process: bool = False


@dataclass
class _Update:
    run_id: str
    method: str
    route: str
    unique: str
    body: Optional[bytes]
    what: str
    stage_number: Optional[int] = None
    #: Whether it may finish the run (a FAILED or CANCELLED stage, the last stage COMPLETED, ``/complete``).
    finishing: bool = False
    #: A progress report: the outbox keeps only the newest pending one per stage.
    progress: bool = False
    #: The cause of an earlier attempt that got no definite answer (it may have been stored), if any.
    unanswered: Optional[str] = None


#: The cause and fix of an outcome ``conflict``, word for word the TypeScript client's text: a
#: cancel (the app's ``POST /cancel``) finalizes unfinished stages CANCELLED without output, so a
#: conflict does not always mean two runners.
CONFLICT_CAUSE_AND_FIX = (
    "Cause: the stage was already final with another output, set earlier by a cancel (the app's POST /cancel stores "
    "unfinished stages CANCELLED without output), by another runner on the same run id, or by a run of this stage again. "
    "Fix: nothing after a cancel; otherwise give each execution its own run id")

#: A ``/complete`` answered ``duplicate``, word for word the TypeScript ``runPipeline``'s warning up
#: to the cause: the app's hook ran once, with an earlier completion's results, not these.
DUPLICATE_COMPLETION = (
    "The run's completion had already been received (outcome \"duplicate\"), so these results did not reach the app's "
    "onRunCompleted hook, which ran once with the earlier /complete's: ")


class PrismaAPIClient:
    """Reports a pipeline run's stages to the web app (the pipeline-status contract).

    A drop-in for the original runner's client: ``PrismaAPIClient()`` reads
    ``FRONTEND_WEBHOOK_URL`` (the web app's origin; a URL already ending with ``/api/pipeline``
    is accepted, not doubled) and
    ``WEBHOOK_SECRET``, and ``mark_*`` return ``True`` or ``False`` and never raise.

    ``True`` means the server stored the update, or, with an outbox, that the update is queued
    on disk and will be delivered in order. Each update has one ``Idempotency-Key`` (a UUID) kept
    across its retries and redeliveries; failures that may pass (no answer, 408, 429, 5xx) are
    retried with backoff and jitter, honouring ``Retry-After``.

    With an outbox (``outbox_dir=``, else ``PIPELINE_STATUS_OUTBOX_DIR``), an update that could
    not be delivered is kept in SQLite and delivered by a background thread, by :meth:`flush`,
    or by the next process using the same directory; while a run has queued updates, its new
    ones queue behind them. An update refused for good (400, 404, 409, 415, 422, or 413 after its
    output was cut) becomes a dead letter (kept, logged, read with :meth:`dead_letters`) and the
    run's later updates flow; one refused with 401/403 stays queued and is retried every
    ``slow_retry_interval`` seconds with an error logged each time, so fixing the secret
    delivers it; any update older than ``max_age`` seconds is dead-lettered.

    Each retry is logged as a warning with its cause and wait. The run summary: outputs changed
    so that their status is stored are in :attr:`altered_outputs`, and :meth:`undelivered` says
    what was not delivered (queued, dead-lettered, lost).

    Args:
        base_url: the web app's origin. Default: ``FRONTEND_WEBHOOK_URL``.
        secret: the shared ``X-Webhook-Secret``. Default: ``WEBHOOK_SECRET``. Read as the server
            reads ``WEBHOOK_SECRET``: a comma-separated list (entries stripped); the first entry is
            sent, so ``WEBHOOK_SECRET='new,old'`` during a rotation sends ``new``.
        signing_secret: a Standard Webhooks secret (``whsec_<base64>`` or plain); every request is
            then signed (docs/security.md). Default: ``WEBHOOK_SIGNING_SECRET``.
        base_path: the routes' base path. Default ``/api/pipeline``.
        stages: stage names by number. Default: the original five stages.
        timeout: seconds (a float, Python's idiom; the TypeScript client's ``timeoutMs`` is
            milliseconds) per attempt, one deadline from resolving the host to the answer's last
            byte (a stalled or trickled body ends the attempt as a timeout). Default 30.
        retry: the :class:`RetryPolicy` of one request. Default ``RetryPolicy()``.
        outbox_dir: the outbox directory. Default: ``PIPELINE_STATUS_OUTBOX_DIR``; none when unset.
        max_age: seconds after an update's first attempt after which it is dead-lettered. Default 72 h.
        slow_retry_interval: seconds between attempts of an update refused with 401/403. Default 60.
        background: deliver queued updates from a daemon thread. Default ``True``.
        logger: where the client logs. Default ``logging.getLogger("pipeline_status_client")``.
        heartbeat_interval: seconds between heartbeats (1 to 3600; the TypeScript client's
            ``heartbeatIntervalMs`` is milliseconds). When set, a daemon thread
            sends ``POST {base}/{run_id}/heartbeat`` (announcing ``intervalMs``) from
            ``mark_stage_processing`` until the stage's final ``mark_*``, so the stale-run sweeper
            judges the run by this interval and the client learns within one interval that the
            run was finished elsewhere. Heartbeats are never queued nor retried. Default ``None``:
            no automatic heartbeats (the original runner's behaviour); :meth:`heartbeat` sends one.
        on_run_finished: called as ``on_run_finished(run_id, run)`` once per run when an answer
            shows the run finished by someone else (cancelled by the web app, failed by the
            stale-run sweeper, completed elsewhere); ``run`` is the run as stored (``status``,
            ``error``). Exceptions it raises are logged. See also :meth:`run_finished`.
        on_queued_completion: called as ``on_queued_completion(event)`` with a
            :class:`QueuedCompletion` when a completion that waited in the outbox leaves it
            (delivered by a flush, the background thread or a later process on the directory,
            dead-lettered, or superseded; ``"unknown"`` when its answer cannot be read): the later outcome of a ``complete_run`` that returned
            ``True`` because it was queued. Not called for a completion delivered or refused on
            its first send. Exceptions it raises are logged.
        traceparent: a W3C ``traceparent`` sent on every request, so the web app's stage spans
            continue the runner's trace (docs/tracing.md). Default: the ``TRACEPARENT``
            environment variable, if set (an invalid one is ignored with a warning; an invalid
            ``traceparent`` raises).
        tracestate: the W3C ``tracestate`` sent with it. Default: ``TRACESTATE``, if set.
        trace_headers: called before every request for its trace headers (``traceparent``,
            ``tracestate``, ``baggage``; others are dropped), e.g. from OpenTelemetry's
            ``inject``; wins over ``traceparent``. Never fails a request: when it raises,
            returns no mapping, or returns a value with CR/LF/NUL or an invalid ``traceparent``,
            that request goes out without trace headers, with one warning per cause. Default ``None``.

    Raises:
        ConfigurationError: no base URL, neither a secret nor a signing secret, or a bad option.

    Example::

        from pipeline_status_client import PrismaAPIClient
        client = PrismaAPIClient(outbox_dir=".pipeline-outbox")
        client.initialize_pipeline_stages(run_id)
        client.mark_stage_complete(run_id, 1, {"rows": 1280})
    """

    def __init__(
        self,
        base_url: Optional[str] = None,
        secret: Optional[str] = None,
        *,
        signing_secret: Optional[str] = None,
        base_path: str = BASE_PATH,
        stages: Optional[Mapping[int, str]] = None,
        timeout: float = 30.0,
        retry: Optional[RetryPolicy] = None,
        outbox_dir: Optional[str] = None,
        max_age: float = DEFAULT_MAX_AGE,
        slow_retry_interval: float = DEFAULT_SLOW_RETRY_INTERVAL,
        background: bool = True,
        logger: Optional[logging.Logger] = None,
        heartbeat_interval: Optional[float] = None,
        on_run_finished: Optional[Callable[[str, Dict[str, Any]], None]] = None,
        on_queued_completion: Optional[Callable[[QueuedCompletion], None]] = None,
        traceparent: Optional[str] = None,
        tracestate: Optional[str] = None,
        trace_headers: Optional[TraceHeaders] = None,
    ) -> None:
        base_url = base_url or os.environ.get(ENV_WEBHOOK_URL, "")
        # Read like the server reads it: during a rotation (``new,old``) the first entry is current.
        secret = next(iter(parse_secret_list(secret if secret is not None else os.environ.get(ENV_WEBHOOK_SECRET, ""))), "")
        signing_secret = signing_secret if signing_secret is not None else os.environ.get(ENV_SIGNING_SECRET, "")
        if not base_url:
            raise ConfigurationError(f"Set {ENV_WEBHOOK_URL} (the web app's origin, e.g. https://app.example.com) or pass base_url")
        if not base_url.startswith(("http://", "https://")):
            hint = ""
            if re.fullmatch(r"(?:[\w.-]+|\[[\d:a-fA-F]+\])(?::\d+)?(?:[/?#]\S*)?", base_url):
                local = re.match(r"(localhost|127\.|0\.0\.0\.0|\[::1\])", base_url)
                hint = f"; did you mean {'http' if local else 'https'}://{base_url}?"
            raise ConfigurationError(f"{ENV_WEBHOOK_URL} must be an http(s) URL, got {base_url!r}{hint}")
        if not secret and not signing_secret:
            raise ConfigurationError(f"Set {ENV_WEBHOOK_SECRET} (or {ENV_SIGNING_SECRET}) or pass secret")
        if not timeout > 0 or not max_age > 0 or not slow_retry_interval > 0:
            raise ConfigurationError("timeout, max_age and slow_retry_interval must be positive numbers of seconds")
        if heartbeat_interval is not None and not 1 <= heartbeat_interval <= 3600:
            raise ConfigurationError(f"heartbeat_interval must be 1 to 3600 seconds, got {heartbeat_interval!r}")
        self.heartbeat_interval = heartbeat_interval
        self.on_run_finished = on_run_finished
        self.on_queued_completion = on_queued_completion
        #: Per run: "self" when this client's own update finished it, else the run as stored when
        #: finished elsewhere ("deleted" for a run deleted while it ran). Like the other per-run
        #: memories below, the most recent RECENT_RUNS runs only.
        self._finished: Dict[str, Union[str, Dict[str, Any]]] = RecentRuns()
        #: Runs whose superseded updates were logged: one warning per run.
        self._superseded_runs: Set[str] = set()
        self._progress_seq: Dict[Any, int] = {}
        #: Runs the server has shown this client unfinished (in any answer). A run first learned
        #: finished from an answer to this client's own update or heartbeat, never shown unfinished
        #: before, had finished before this client's first update reached the server: a reused id,
        #: unless one of this client's requests for it had gone unanswered or waited in the outbox
        #: before (``_waited``): the run may have ended after that one was sent.
        self._seen_open: RecentRuns = RecentRuns()
        self._waited: RecentRuns = RecentRuns()
        self._catalogues: Dict[str, List[Dict[str, Any]]] = {}
        self._heartbeats: Dict[str, Any] = {}
        #: Per run, the watch behind :meth:`cancelled`; runs whose own finishing update is in flight.
        self._watches: Dict[str, RunWatch] = {}
        self._finishing: Set[str] = set()
        self._warned: Set[str] = set()
        #: Per run, the ``outcome`` the server answered to this client's last delivered ``/complete``.
        self._completions: Dict[str, str] = {}
        #: Per run, the causes of lost updates already logged as an error (later ones: debug), for
        #: the RECENT_RUNS runs most recently failing; and how many updates this client dead-lettered.
        self._logged_causes: Dict[str, Set[str]] = RecentRuns()
        self._dead_lettered: Dict[str, int] = {}
        self.poll_interval = DEFAULT_POLL_INTERVAL
        # What answers taught the client (runs, finishes, seqs): its own lock, so a heartbeat
        # thread never waits behind a delivery that is retrying under the delivery lock.
        self._state = threading.Lock()
        try:
            signing_key = decode_signing_secret(signing_secret) if signing_secret else None
        except ValueError as error:
            raise ConfigurationError(str(error)) from error
        self.stages: Dict[int, str] = dict(stages or DEFAULT_STAGES)
        self.retry = retry or RetryPolicy()
        self.max_age = float(max_age)
        self.slow_retry_interval = float(slow_retry_interval)
        self.log = logger or _log
        traced = resolve_trace_headers(traceparent, tracestate, trace_headers, self.log.warning)
        self._transport = Transport(base_url, base_path, secret or None, signing_key, timeout, traced)
        self._lock = threading.RLock()  # one delivery path at a time keeps every run's order
        self._runs: Dict[str, Dict[str, Any]] = RecentRuns()
        self._altered: List[AlteredOutput] = []
        self._failed: List[Tuple[str, str]] = []
        self._run_listeners: List[Callable[[str, Dict[str, Any]], None]] = []
        directory = outbox_dir or os.environ.get(ENV_OUTBOX_DIR) or None
        self.outbox: Optional[Outbox] = Outbox(directory) if directory else None
        # Read before the first redelivery can land: a restarted runner's attempts do not depend on its timing.
        #: The updates an earlier process left in the outbox, as loaded (see :meth:`_inherited_of`).
        self._left_behind: List[OutboxEntry] = self.outbox.pending() if self.outbox is not None else []
        #: Their outbox positions (``QueuedCompletion.earlier_process``), and those this client dead-lettered since.
        self._inherited_seqs: Set[int] = {entry.seq for entry in self._left_behind}
        self._inherited_dead: Set[int] = set()
        #: Per run, read once: stage → the attempt an earlier process left running (see :meth:`_restart_base`).
        self._left_processing: Dict[str, Dict[int, int]] = {}
        self._wake = threading.Event()
        self._closed = threading.Event()
        self._thread: Optional[threading.Thread] = None
        if self.outbox is not None and background:
            self._thread = threading.Thread(target=self._background, name="pipeline-status-outbox", daemon=True)
            self._thread.start()

    # -- the original client's methods ---------------------------------------------------------

    def initialize_pipeline_stages(self, run_id: str) -> bool:
        """Starts a run's reporting: stage 1 PROCESSING (the server then marks the run PROCESSING)."""
        return self.mark_stage_processing(run_id, 1)

    def mark_stage_processing(self, run_id: str, stage_number: int, output: Optional[Any] = None) -> bool:
        """Marks stage ``stage_number`` PROCESSING, with an optional ``output`` (a dict is
        JSON-encoded, a string sent as it is); without one it sends ``"output": ""``, exactly the
        payload of the original runner. A stage an earlier process left PROCESSING (a runner
        restarted with the same ``run_id``) is sent as a new attempt (``attempt`` k + 1,
        ``maxAttempts`` k + 1, ``nextRetryAt`` null; see :meth:`_restart_base`), so the server resets
        its streamed output; the first call for a run reads it once (``GET /status``)."""
        base = self._restart_base(run_id, stage_number)
        attempt = {"attempt": base + 1, "maxAttempts": base + 1, "nextRetryAt": None} if base > 0 else None
        return self._stage_update(run_id, stage_number, "PROCESSING", "" if output is None else output, completed=False, attempt=attempt)

    def _restart_base(self, run_id: str, stage_number: int) -> int:
        """The attempt an earlier process left stage ``stage_number`` running (0: none), the one
        restart rule (``restart_attempts.py``, as ``runPipeline``'s): the run's stages are read once
        per run (``GET /status``, none for a run this client created) with the updates an earlier
        process left in the outbox; each stage is bumped once, by the first report of it that
        starts it. A failed read is logged once and the outbox's updates alone decide."""
        with self._state:
            known = self._left_processing.get(run_id)
        if known is None and self._closed.is_set():
            # Nothing is sent after close, not even this read: the update itself is refused next.
            return 0
        if known is None:
            stored: List[Any] = []
            try:
                # One attempt: a server that cannot be reached fails the stage update next, which says so.
                answer = self._transport.send(Request("GET", route_path("status", run_id), str(uuid.uuid4())))
                stored = list(answer.get("stages") or [])
            except StatusNetworkError as error:
                self.log.debug("Run %s: GET /status for the restart rule got no answer (%s); the outbox's updates alone decide",
                               run_id, error)
            except PipelineStatusError as error:
                if isinstance(error, StatusHttpError) and error.status == 401:
                    # The runner's secret does not match: its updates are refused the same way, and say so with the fix.
                    self.log.debug("Run %s: GET /status for the restart rule was refused (%s), as the run's updates will be",
                                   run_id, _failure_reason(error))
                else:
                    self._warn_once("restart-read", f"Run {run_id}: GET /status was refused ({error}), so the stages an earlier "
                                    "process left PROCESSING are known only from the outbox; a stage the server holds PROCESSING "
                                    "may meet its earlier text as conflict. Fix: let the runner's secret read the run (an authorize "
                                    "hook that refuses the runner's reads)")
            with self._state:
                known = self._left_processing.setdefault(run_id, stages_left_processing(stored, self._inherited_of(run_id)))
        with self._state:
            return known.pop(stage_number, 0)

    def mark_stage_complete(self, run_id: str, stage_number: int, output_data: Optional[Any] = None) -> bool:
        """Marks stage ``stage_number`` COMPLETED with its output and ``completedAt`` now.

        ``output_data``: a string is sent as it is (JSON or markdown), anything else as
        ``json.dumps(output_data)`` with NaN and ±Infinity written ``null`` (as ``JSON.stringify``
        writes them in the TypeScript client; ``json.dumps`` alone writes ``NaN``, which is not
        JSON). The status is never lost because of the output: an output that cannot become JSON
        (``bytes``, an object, a circular list) is sent as the placeholder
        ``[output not serialisable as JSON: <reason>]`` and recorded in :attr:`altered_outputs`
        like the TypeScript client's; NUL and lone
        surrogates (which PostgreSQL cannot store) are replaced with U+FFFD, and an output the
        server refuses as too large (413) is cut to the limit it states and ended with
        :data:`TRUNCATION_MARKER`, then sent as a new update (a new Idempotency-Key). Both are
        logged as warnings."""
        return self._stage_update(run_id, stage_number, "COMPLETED", output_data, completed=True)

    def mark_stage_failed(self, run_id: str, stage_number: int, error: Any) -> bool:
        """Marks stage ``stage_number`` FAILED; ``error`` (a message or an exception) is sent as its
        output and becomes the run's error."""
        return self._stage_update(run_id, stage_number, "FAILED", str(error), completed=True)

    def mark_stage_cancelled(self, run_id: str, stage_number: int) -> bool:
        """Marks stage ``stage_number`` CANCELLED (the server then marks the run CANCELLED)."""
        return self._stage_update(run_id, stage_number, "CANCELLED", None, completed=True)

    # -- the rest of the contract ----------------------------------------------------------------

    def create_run(self, run_id: Optional[str] = None, pipeline: Optional[str] = None,
                   tags: Optional[Sequence[str]] = None, metadata: Optional[Mapping[str, Any]] = None) -> Dict[str, Any]:
        """Creates a run (``POST /runs``), or returns the existing run with that id; the server
        picks a UUID when ``run_id`` is ``None`` (then a resend may create a second run, so choose
        the id when it matters). ``pipeline``: the handlers' pipeline whose stages the run keeps
        (default ``default``; an unknown name is a 400); ``tags``: at most 20 strings of 1 to 128
        characters; ``metadata``: a JSON object of at most 16 KiB. Only the arguments given are
        sent. Returns the run as stored (``id``, ``status``, ``pipeline``, ``tags``, ``metadata``,
        timestamps...); its catalogue is kept for :meth:`check_catalogue`.

        Raises:
            InvalidRunIdError: ``run_id`` is outside the contract's rule.
            ValueError: ``pipeline``, ``tags`` or ``metadata`` the server would refuse (named).
            StatusHttpError, StatusNetworkError: after the retries, when it could not be created.
            ClientClosedError: the client was closed; nothing is sent.
        """
        if run_id is not None and not is_valid_run_id(run_id):
            raise InvalidRunIdError(f"invalid run id {run_id!r}: 1-128 characters of A-Z a-z 0-9 . _ ~ : -, not dots only")
        key = str(uuid.uuid4())
        body = encode_json(create_run_body(run_id, pipeline, tags, metadata))
        answer = self._read(Request("POST", route_path("runs"), key, body))
        run = answer.get("run") or {}
        if isinstance(answer.get("catalogue"), list):
            self._catalogues[str(run.get("id", run_id))] = answer["catalogue"]
        if answer.get("created") is True:
            # A run this call created has no stages yet: no read needed for the restart rule.
            with self._state:
                created_id = str(run.get("id", run_id))
                self._left_processing.setdefault(created_id, stages_left_processing([], self._inherited_of(created_id)))
        self._observe_run(str(run.get("id", run_id)), answer, read=True)
        return run

    def list_runs(self, status: Union[None, str, Sequence[str]] = None, pipeline: Optional[str] = None,
                  tag: Union[None, str, Sequence[str]] = None, created_after: Union[None, str, datetime] = None,
                  created_before: Union[None, str, datetime] = None, limit: Optional[int] = None) -> Iterator[Dict[str, Any]]:
        """Yields the runs of ``GET /runs``, newest first, across pages: a generator that asks for
        the next page (``nextCursor``, same filters) only when the runs of the last one were
        taken. Each run is a summary without stage outputs (``id``, ``status``, ``pipeline``,
        ``tags``, ``metadata``, ``createdAt``, ``currentStage``, ``stageCounts``...).

        Filters (every given one must hold): ``status`` one or a list (any of them), ``pipeline``,
        ``tag`` one or a list (all of them), ``created_after`` (inclusive) and ``created_before``
        (exclusive) as ISO 8601 strings or datetimes (a naive one is local time). ``limit``: runs
        per page, 1 to 200 (the server's default is 50). Reads are authenticated like
        :meth:`get_status` and retried like it; ``timeout`` applies per attempt.

        Raises:
            ValueError: at the call, for a filter or ``limit`` the server would refuse (named).
            StatusHttpError, StatusNetworkError: while iterating, after the retries (a refused
                cursor is a 400 ``invalid_cursor``).
            ClientClosedError: the client was closed (at the call, or while iterating once it is).
        """
        filters = list_query(status, pipeline, tag, created_after, created_before)
        check_limit(limit)
        self._check_open()

        def read(route: str) -> Dict[str, Any]:
            return self._read(Request("GET", route, str(uuid.uuid4())))

        return iterate_runs(read, filters, limit)

    def count_runs(self, group_by: str, status: Union[None, str, Sequence[str]] = None, pipeline: Optional[str] = None,
                   tag: Union[None, str, Sequence[str]] = None, created_after: Union[None, str, datetime] = None,
                   created_before: Union[None, str, datetime] = None) -> Dict[str, int]:
        """The number of runs per ``group_by`` (``"status"`` or ``"pipeline"``) with the filters of
        :meth:`list_runs` (``GET /runs/counts``): ``{"FAILED": 3, ...}``, keys with no run absent.

        Raises:
            ValueError: a filter or ``group_by`` the server would refuse (named).
            StatusHttpError, StatusNetworkError: after the retries.
            ClientClosedError: the client was closed; nothing is sent.
        """
        if group_by not in ("status", "pipeline"):
            raise ValueError(f"group_by must be 'status' or 'pipeline', got {group_by!r}")
        pairs = list_query(status, pipeline, tag, created_after, created_before) + [("groupBy", group_by)]
        answer = self._read(Request("GET", f"runs/counts?{urllib.parse.urlencode(pairs)}", str(uuid.uuid4())))
        counts = answer.get("counts")
        return dict(counts) if isinstance(counts, dict) else {}

    def complete_run(
        self,
        run_id: str,
        status: str = "COMPLETED",
        *,
        completed_at: Union[str, datetime, None] = None,
        duration: Optional[float] = None,
        error: Optional[str] = None,
        **results: Any,
    ) -> bool:
        """Ends a run explicitly (``POST /complete``) and hands its results to the app's
        ``onRunCompleted`` hook. ``status``: COMPLETED, FAILED or CANCELLED; ``completed_at``: an
        ISO 8601 timestamp string or a ``datetime`` (sent as UTC with milliseconds and ``Z``; a
        naive datetime is taken as this machine's local time; the server clamps an instant skewed
        beyond its tolerance), default now; datetimes in ``results`` are sent the same way; ``duration``: seconds; ``error``: the run's error,
        stored only on a run that has none (after ``mark_stage_failed`` the run keeps the stage's error, and
        ``complete_run(run_id, "FAILED", error=...)`` still returns ``True`` and runs the hook);
        ``results``: any JSON fields of the app's own (``opportunities``, ``fullReportMarkdown``).
        Delivered in order after the run's stage updates (queued behind them when they are).
        Returns ``True`` when stored or queued, ``False`` otherwise (logged); never raises.

        ``True`` also when the server answers ``duplicate``: the run's completion had already been
        received (another runner or process on the same run id, the web app, or this client's own
        earlier ``complete_run``), so the app's ``onRunCompleted`` hook ran once with that earlier
        completion's results and these did not reach it. That is logged as one warning, in the
        TypeScript ``runPipeline``'s words; :meth:`completion_outcome` returns ``"duplicate"``. When
        an earlier attempt of this same completion got no definite answer (a timeout, a reset, a
        gateway's 502/504), the ``duplicate`` may be the answer to that attempt, and the warning
        says both possibilities."""
        if status not in RUN_END_STATUSES:
            self.log.error("Run %s: complete_run status must be one of %s, got %r", run_id, ", ".join(RUN_END_STATUSES), status)
            return self._lost(run_id, f"completion {status!r}", "not a run end status")
        # What the server would refuse (400) is refused here, naming the argument: with an outbox it
        # would otherwise become a dead letter, and the results would never reach the hook either way.
        problem = _completion_problem(completed_at, duration)
        if problem is not None:
            self.log.error("Run %s: complete_run %s; completion %s not sent", run_id, problem, status)
            return self._lost(run_id, f"completion {status}", problem)
        body: Dict[str, Any] = {**results, "status": status, "completedAt": completed_at or utc_timestamp()}
        if duration is not None:
            body["duration"] = duration
        if error is not None:
            body["error"] = to_storable_text(str(error))[0]
        try:
            encoded = encode_json(body)
        except (TypeError, ValueError) as problem:
            self.log.error("Run %s: the completion is not JSON: %s", run_id, problem)
            return self._lost(run_id, f"completion {status}", f"not JSON: {problem}")
        return self._submit(run_id, "complete", encoded, f"completion {status}", finishing=True)

    def get_status(self, run_id: str) -> Dict[str, Any]:
        """The run and its stored stages (``GET /status``): ``{"run": {...}, "stages": [...]}``,
        stages ordered by number; a stage that never reported is absent (PENDING).

        Raises:
            InvalidRunIdError: ``run_id`` is outside the contract's rule.
            StatusHttpError, StatusNetworkError: after the retries.
            ClientClosedError: the client was closed; nothing is sent.
        """
        if not is_valid_run_id(run_id):
            raise InvalidRunIdError(f"invalid run id {run_id!r}")
        answer = self._read(Request("GET", route_path("status", run_id), str(uuid.uuid4())))
        if isinstance(answer.get("catalogue"), list):
            self._catalogues[run_id] = answer["catalogue"]
        with self._state:
            # The restart rule's one read per run (see :meth:`_restart_base`): a read made before the
            # run's first report (check_catalogue's) serves it, so it is not read twice.
            if run_id not in self._left_processing:
                self._left_processing[run_id] = stages_left_processing(list(answer.get("stages") or []), self._inherited_of(run_id))
        self._observe_run(run_id, answer, read=True)
        return answer

    # -- runner control (docs/other-languages.md) ------------------------------------------------

    def check_catalogue(self, run_id: str, stage_count: Optional[int] = None) -> Optional[List[Dict[str, Any]]]:
        """Checks, before a run starts, that the runner has as many stages as the server's
        catalogue (``stage_count``, default: this client's ``stages``), from :meth:`create_run`'s
        answer or else ``GET /status``. Returns the catalogue (``[{"stageNumber", "stageName"}]``),
        or ``None`` from an older server that sends none.

        Raises:
            CatalogueMismatchError: the numbers differ (a 5-stage runner against a 3-stage server
                would otherwise see the run COMPLETED after stage 3).
            StatusHttpError, StatusNetworkError: the status could not be read.
            ClientClosedError: the client was closed.
        """
        self._check_open()
        catalogue = self._catalogues.get(run_id)
        if catalogue is None:
            catalogue = self.get_status(run_id).get("catalogue")
        if not isinstance(catalogue, list):
            return None
        expected = len(self.stages) if stage_count is None else stage_count
        if len(catalogue) != expected:
            raise CatalogueMismatchError(run_id, expected, len(catalogue))
        return catalogue

    def heartbeat(self, run_id: str, stage_number: Optional[int] = None, progress: Optional[Mapping[str, Any]] = None) -> bool:
        """Sends one heartbeat now (``POST {base}/{run_id}/heartbeat``): one attempt, never
        retried nor queued (a missed heartbeat is not worth replaying). ``progress``
        (``current``, ``total``, ``percent``, ``message``; needs ``stage_number``) gets its ``seq``
        from the client; progress that breaks the contract's rules (NaN or ±Infinity, a negative
        ``current``, ``percent`` over 100, a message that is not text) is dropped with a warning
        while the heartbeat itself is sent. Returns whether the server answered 2xx; its answer
        tells the client whether the run was finished elsewhere (see :meth:`run_finished`).
        Never raises: anything that goes wrong is logged and returns ``False``."""
        try:
            return self._heartbeat(run_id, stage_number, progress)
        except Exception as error:  # documented never to raise: a heartbeat must not end a stage
            self.log.warning("Run %s: heartbeat not sent: %s: %s", run_id, type(error).__name__, error)
            return False

    def _heartbeat(self, run_id: str, stage_number: Optional[int], progress: Optional[Mapping[str, Any]]) -> bool:
        if not is_valid_run_id(run_id):
            self.log.error("Run %r: heartbeat not sent: invalid run id", run_id)
            return False
        if self._closed.is_set():
            self.log.error("Run %s: heartbeat not sent: %s", run_id, ClientClosedError())
            return False
        body: Dict[str, Any] = {}
        if stage_number is not None:
            body["stageNumber"] = stage_number
        if progress is not None:
            fields = _progress_fields(progress)
            problem = "progress needs stage_number" if stage_number is None else progress_problem(fields)
            if problem is None:
                body["progress"] = self._with_seq(run_id, stage_number, fields)
            else:
                self.log.warning("Run %s: heartbeat progress dropped (%s); the heartbeat is sent without it", run_id, problem)
        if self.heartbeat_interval is not None:
            body["intervalMs"] = int(round(self.heartbeat_interval * 1000))
        try:
            answer = self._transport.send(Request("POST", route_path("heartbeat", run_id), str(uuid.uuid4()), encode_json(body)))
        except PipelineStatusError as error:
            if not self._learn_from_refusal(run_id, error, False):
                self._note_waited(run_id)
            self.log.debug("Run %s: heartbeat not delivered: %s", run_id, error)
            return False
        self._observe_run(run_id, answer)
        return True

    def report_progress(self, run_id: str, stage_number: int, *, current: Optional[float] = None, total: Optional[float] = None,
                        percent: Optional[float] = None, message: Optional[str] = None) -> bool:
        """Reports progress within a PROCESSING stage: a PROCESSING stage update with
        ``progress`` (``current``, ``total``, ``percent`` 0-100, ``message``), in order with the
        run's other updates and queued in the outbox like them. The client assigns
        ``progress.seq`` per run and stage, increasing and never below the current time in
        milliseconds, so a delayed or redelivered report (also from a later process) never
        overwrites a newer one; the outbox keeps only the newest pending report per stage.
        A report that cannot be sent (NaN or ±Infinity, as the TypeScript client refuses them; a
        negative ``current``, ``percent`` over 100, ``current`` above ``total``, a ``message`` that is not text or is over 500
        characters) is dropped with a warning and returns ``False``; it is the caller's mistake,
        not an undelivered update, so :meth:`undelivered` does not list it. Otherwise returns
        ``True``/``False`` like the ``mark_*`` methods. Never raises."""
        problem = _stage_number_problem(stage_number, self.stages)
        if problem is not None:
            self.log.error("Run %s: %s; progress not sent", run_id, problem)
            return False
        name = self.stages[stage_number]
        progress = _progress_fields({"current": current, "total": total, "percent": percent, "message": message})
        problem = progress_problem(progress)
        if problem is not None:
            self.log.warning("Run %s: stage %d progress dropped: %s", run_id, stage_number, problem)
            return False
        body = {"stageNumber": stage_number, "stageName": name, "status": "PROCESSING",
                "progress": self._with_seq(run_id, stage_number, progress)}
        return self._submit(run_id, "stage-update", encode_json(body), f"stage {stage_number} progress", stage_number, progress=True)

    def stream_output(self, run_id: str, stage_number: int, **options: Any) -> StageOutputStream:
        """A running stage's streamed output (``POST {base}/{run_id}/stages/{stage}/output``):
        ``write(text)`` returns at once and a thread sends the text in batches (0.25 s or 16 KiB,
        chunks of at most 64 KiB), in order with the run's updates and through the outbox; a 409
        or 413 stops it with one warning. Close it (or leave its ``with`` block) before the
        stage's final ``mark_*``. Options: ``flush_interval`` (seconds), ``flush_bytes``,
        ``max_buffered_bytes`` (1 MiB), ``close_timeout`` (seconds). See
        :class:`~pipeline_status_client.stream_output.StageOutputStream`.

        Raises:
            InvalidRunIdError: ``run_id`` is outside the contract's rule (what the ``mark_*``
                methods log and return ``False`` for); nothing is sent.
            ValueError: a bad stage number or option.
        """
        return StageOutputStream(self, run_id, stage_number, **options)

    def run_finished(self, run_id: str) -> Optional[Dict[str, Any]]:
        """The run as stored, when this client learned that it was finished by someone else
        (cancelled by the web app, failed by the stale-run sweeper, completed elsewhere);
        ``None`` otherwise (also when this client's own update finished it). After that, the
        ``mark_*`` methods and :meth:`report_progress` of the run send nothing and return
        ``False``; stop the pipeline."""
        with self._state:
            finished = self._finished.get(run_id)
            return dict(finished) if isinstance(finished, dict) else None

    def run_deleted(self, run_id: str) -> bool:
        """Whether the run's watch (:meth:`cancelled`) learned that the run was deleted on the
        server while it ran (its live stream ended with ``: closed deleted``): there is no run left,
        so :meth:`run_finished` stays ``None``, but :meth:`cancelled` is set, the heartbeats stop,
        the ``mark_*`` methods and :meth:`report_progress` of the run send nothing and return
        ``False`` (they would be answered ``404 run_not_found``), and :meth:`run_stage_with_retries`
        raises :class:`RunDeletedError`. Logged once, at warning, with the cause."""
        with self._state:
            return self._finished.get(run_id) == "deleted"

    def start_heartbeats(self, run_id: str, stage_number: int) -> None:
        """Sends a heartbeat now and then every ``heartbeat_interval`` seconds from a daemon
        thread until :meth:`stop_heartbeats`, the stage's final ``mark_*``, the run being finished
        elsewhere, or :meth:`close`. ``mark_stage_processing`` calls it when
        ``heartbeat_interval`` is set."""
        if self.heartbeat_interval is None:
            raise ConfigurationError("start_heartbeats needs heartbeat_interval")
        self.stop_heartbeats(run_id)
        stop = threading.Event()
        interval = self.heartbeat_interval

        def beat() -> None:
            while not stop.is_set() and not self._closed.is_set() and self.run_finished(run_id) is None and not self.run_deleted(run_id):
                self.heartbeat(run_id, stage_number)
                stop.wait(interval)

        thread = threading.Thread(target=beat, name=f"pipeline-status-heartbeat-{run_id}", daemon=True)
        with self._state:
            self._heartbeats[run_id] = (stop, thread)
        thread.start()

    def stop_heartbeats(self, run_id: str) -> None:
        """Stops the run's heartbeat thread, if any (returns at once; the thread ends after
        its heartbeat in flight)."""
        with self._state:
            running = self._heartbeats.pop(run_id, None)
        if running is not None:
            running[0].set()

    def mark_stage_retrying(self, run_id: str, stage_number: int, stage_name: Optional[str], attempt: int, max_attempts: int,
                            last_error: Any, next_retry_at: Union[datetime, str, float]) -> bool:
        """Reports that attempt ``attempt - 1`` of stage ``stage_number`` failed and attempt
        ``attempt`` (2 or more) of ``max_attempts`` will start at ``next_retry_at`` (a datetime, an
        ISO 8601 string, or seconds since the epoch, as ``time.time()``): a PROCESSING update with
        ``attempt``, ``maxAttempts``, ``lastError`` (the failure, an exception or a message, cut
        to 2,000 characters) and ``nextRetryAt`` (stored clamped to [now, now + 24 h]).
        ``stage_name``: ``None`` for the catalogue's.

        Returns like the ``mark_*`` methods: ``True`` when delivered or queued, ``False`` when not
        (logged). ``True`` also when the server already had a higher attempt of the stage and kept
        it (outcome ``stale``, nothing stored: a late report of an earlier retry); that is logged
        once at INFO.

        Raises:
            ValueError: ``attempt`` is not a whole number of 2 or more (attempt 1 is the first run,
                not a retry; report it with :meth:`mark_stage_processing`) or is above
                ``max_attempts``.
        """
        if isinstance(attempt, bool) or not isinstance(attempt, int) or attempt < 2:
            raise ValueError(f"attempt must be a whole number of 2 or more (the attempt about to start; 1 is the first run, "
                             f"not a retry), got {attempt!r}")
        if isinstance(max_attempts, int) and not isinstance(max_attempts, bool) and attempt > max_attempts:
            raise ValueError(f"attempt must be at most max_attempts ({max_attempts}), got {attempt!r}")
        when = next_retry_at
        if isinstance(when, (int, float)):
            when = datetime.fromtimestamp(float(when), timezone.utc)
        fields = {"attempt": attempt, "maxAttempts": max_attempts, "lastError": last_error_of(last_error if isinstance(last_error, BaseException) else Exception(str(last_error))),
                  "nextRetryAt": utc_timestamp(when) if isinstance(when, datetime) else str(when)}
        return self._stage_update(run_id, stage_number, "PROCESSING", None, completed=False, attempt=fields, stage_name=stage_name)

    def mark_stage_attempt_started(self, run_id: str, stage_number: int, attempt: int, max_attempts: int,
                                   stage_name: Optional[str] = None) -> bool:
        """Reports that attempt ``attempt`` of ``max_attempts`` of stage ``stage_number`` starts
        now: a PROCESSING update with ``attempt``, ``maxAttempts`` and ``nextRetryAt`` null (the
        server keeps ``lastError``). Returns like the ``mark_*`` methods."""
        fields = {"attempt": attempt, "maxAttempts": max_attempts, "nextRetryAt": None}
        return self._stage_update(run_id, stage_number, "PROCESSING", None, completed=False, attempt=fields, stage_name=stage_name)

    def cancelled(self, run_id: str) -> threading.Event:
        """A ``threading.Event`` set within a second of the run ending elsewhere (cancelled by
        the web app, failed by the stale-run sweeper, completed by someone else); never set by
        this client's own final update. The first call starts a daemon thread that follows the
        run in the set stream's summary view (``GET {base}/events?run=<run_id>&view=summary``, no
        stage outputs nor streamed chunks sent back; the run's own ``GET {base}/{run_id}/events`` on
        a server without it) with the client's secret; a deadline of
        ``timeout`` on connect, a keep-alive watchdog, reconnects with backoff 1 s to 30 s, polling
        ``GET /status`` meanwhile); on a
        server without the stream route (404, 405) it polls ``GET /status`` every
        ``poll_interval`` seconds (2) instead; each degradation is logged once with its cause and
        fix. Later calls return the same event; the thread ends when the run is finished, on
        :meth:`stop_watching` or :meth:`close`. Any other way the client learns that the run
        ended elsewhere (a heartbeat, a refused update) sets it too.

        Example::

            cancelled = client.cancelled(run_id)
            for chunk in chunks:
                if cancelled.is_set():
                    break
                work(chunk)
        """
        with self._state:
            watch = self._watches.get(run_id)
            if watch is not None:
                return watch.event
            watch = RunWatch(run_id, self._transport, lambda run: self._watched_run(run_id, run), self.log, self._warn_once,
                             self.poll_interval, on_deleted=lambda: self._run_deleted(run_id))
            self._watches[run_id] = watch
            finished = isinstance(self._finished.get(run_id), dict) or self._finished.get(run_id) == "deleted"
        if finished:
            watch.event.set()
        elif not self._closed.is_set():
            watch.start()
        return watch.event

    def stop_watching(self, run_id: str) -> None:
        """Stops the run's watch (see :meth:`cancelled`), closing its stream; its event stays as it is."""
        with self._state:
            watch = self._watches.get(run_id)
        if watch is not None:
            watch.stop()

    def run_stage_with_retries(self, run_id: str, stage: int, fn: Callable[[], Any], attempts: int = 3,
                               backoff: Backoff = None, retry_if: Optional[Callable[[BaseException, int], bool]] = None) -> Any:
        """Runs one stage of the original runner's loop with retries and reports it: PROCESSING,
        then ``fn()`` up to ``attempts`` times in all, then COMPLETED with its result (returned).
        After a failed attempt that will be retried it calls :meth:`mark_stage_retrying`, waits
        ``backoff`` (seconds: a number, a function of the failed attempt's number, or by default
        full jitter up to 1 s, 2 s, 4 s, ... capped at 30 s), then :meth:`mark_stage_attempt_started`.
        ``retry_if(error, attempt)`` decides whether a failure is retried (default: every
        ``Exception``). The last failure is reported FAILED and raised. :meth:`cancelled` is read
        between attempts and ends the wait at once: then :class:`RunFinishedElsewhereError` is
        raised (:class:`RunDeletedError`, a subclass, when the run was deleted on the server) and nothing more is sent (``fn`` itself is never interrupted; read
        ``client.cancelled(run_id)`` inside it to stop early). A closed client raises
        :class:`ClientClosedError` at the call and does not run ``fn``: it could report nothing.

        Example::

            for number, step in enumerate(steps, start=1):
                data = client.run_stage_with_retries(run_id, number, lambda: step(data), attempts=3)
        """
        if not isinstance(attempts, int) or attempts < 1:
            raise ConfigurationError(f"attempts must be a whole number, at least 1, got {attempts!r}")
        self._check_open()
        cancelled = self.cancelled(run_id)
        # A stage an earlier process left PROCESSING runs as a new attempt: `base` shifts every attempt number reported.
        base = self._restart_base(run_id, stage)
        first = {"attempt": base + 1, "maxAttempts": base + attempts, "nextRetryAt": None} if attempts > 1 or base > 0 else None
        self._stage_update(run_id, stage, "PROCESSING", "", completed=False, attempt=first)
        attempt = 1
        while True:
            if cancelled.is_set():
                raise self._ended_elsewhere(run_id)
            try:
                output = fn()
            except Exception as error:
                if cancelled.is_set():
                    raise self._ended_elsewhere(run_id) from error
                if attempt >= attempts or (retry_if is not None and not retry_if(error, attempt)):
                    self.mark_stage_failed(run_id, stage, error)
                    raise
                wait = wait_seconds(backoff, attempt)
                self.mark_stage_retrying(run_id, stage, None, base + attempt + 1, base + attempts, error, time.time() + wait)
                if cancelled.wait(wait):
                    raise self._ended_elsewhere(run_id) from error
                attempt += 1
                self.mark_stage_attempt_started(run_id, stage, base + attempt, base + attempts)
                continue
            if cancelled.is_set():
                raise self._ended_elsewhere(run_id)
            self.mark_stage_complete(run_id, stage, output)
            return output

    def _ended_elsewhere(self, run_id: str) -> RunFinishedElsewhereError:
        """What :meth:`run_stage_with_retries` raises once :meth:`cancelled` is set."""
        if self.run_deleted(run_id):
            return RunDeletedError(run_id)
        return RunFinishedElsewhereError(run_id, self.run_finished(run_id))

    def completion_outcome(self, run_id: str) -> Optional[str]:
        """The server's ``outcome`` for this client's last delivered :meth:`complete_run` of the run:
        ``"applied"`` (its results reached the app's ``onRunCompleted`` hook), ``"duplicate"`` (the
        run's completion had already been received: the hook ran with an earlier one's results,
        not these; unless an attempt of this one got no definite answer, which the server may have
        received: then the hook may have run with these results; the warning says which), or
        ``None`` when none was delivered (not sent, refused, or still queued in the outbox; set
        once the outbox delivers it, unless its answer could not be read: ``QueuedCompletion``
        ``"unknown"``)."""
        with self._state:
            return self._completions.get(run_id)

    def last_known_run(self, run_id: str) -> Optional[Dict[str, Any]]:
        """The run as the server last answered it to this client (every stage update, completion
        and status read carries it), or ``None``. Its ``status`` tells the runner that the run
        was finished elsewhere (cancelled, failed by the stale-run sweeper)."""
        with self._state:
            run = self._runs.get(run_id)
            return dict(run) if run is not None else None

    # -- the outbox ------------------------------------------------------------------------------

    def pending_count(self, run_id: Optional[str] = None) -> int:
        """How many updates wait in the outbox, of one run or of all (0 without an outbox)."""
        return self.outbox.pending_count(run_id) if self.outbox is not None else 0

    def dead_letters(self, run_id: Optional[str] = None) -> List[DeadLetter]:
        """The updates no retry can deliver, kept in the outbox (empty without an outbox), and
        those superseded because their run ended elsewhere (``kind == "superseded"``)."""
        return self.outbox.dead_letters(run_id) if self.outbox is not None else []

    @property
    def altered_outputs(self) -> List[AlteredOutput]:
        """Every stage output this client changed so that its status is stored, in order: a copy
        (the run summary of issue 9 item 3). Each change is also logged as a warning."""
        with self._lock:
            return list(self._altered)

    def undelivered(self, run_id: Optional[str] = None) -> Undelivered:
        """What is not delivered, of one run or of all: updates still queued in the outbox, dead
        letters, and updates lost by this client (see :class:`Undelivered`);
        ``client.undelivered().all_delivered`` says whether every update was delivered."""
        with self._lock:
            failed = [line for run, line in self._failed if run_id is None or run == run_id]
        kept = self.dead_letters(run_id)
        return Undelivered(self.pending_count(run_id), [letter for letter in kept if letter.kind is None], failed,
                           [letter for letter in kept if letter.kind == "superseded"])

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Delivers the outbox now, waiting out backoff, until it is empty or ``timeout``
        seconds have passed (``None``: no limit). Updates refused with 401/403 are tried once per
        flush: when every run waits on such a refusal, waiting cannot help (the secret must be
        fixed), so it returns at once. Returns whether the outbox is empty."""
        if self.outbox is None:
            return True
        if self._closed.is_set():
            # Nothing is sent after close: what waits stays on disk for the next client (as the TypeScript flush()).
            return self.pending_count() == 0
        deadline = None if timeout is None else time.monotonic() + timeout
        self.outbox.make_due()
        while True:
            self._deliver_due()
            next_due = self.outbox.next_due()
            if next_due is None:
                return True
            if all(head.refused for head in self.outbox.heads()):
                return False
            wait = max(0.0, next_due - time.time())
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                wait = min(wait, left)
            if wait > 0:
                time.sleep(min(wait, 0.5))

    def close(self, flush_timeout: Optional[float] = 0.0) -> bool:
        """Stops the background thread after one last flush of at most ``flush_timeout``
        seconds (0: none). What is still queued stays on disk for the next process. Returns
        whether the outbox is empty. Logs, as one warning, what stays undelivered per run (as the
        TypeScript client's ``close()``): ``Closed with 3 update(s) undelivered (outbox .outbox):
        run r1: 2 queued in the outbox, 1 failed``; updates queued, and those this client
        dead-lettered or lost (see :meth:`undelivered`).

        After it the client sends nothing, as the TypeScript client: the calls that return the
        server's data raise :class:`ClientClosedError`; the ``bool`` methods return ``False`` with
        one error line; :meth:`flush` sends nothing (what waits stays on disk for the next client)."""
        for run_id in list(self._heartbeats):
            self.stop_heartbeats(run_id)
        for run_id in list(self._watches):
            self.stop_watching(run_id)
        empty = self.flush(flush_timeout) if flush_timeout else self.pending_count() == 0
        if not self._closed.is_set():
            self._log_undelivered_at_close()
        self._closed.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        return empty

    def _log_undelivered_at_close(self) -> None:
        """The warning of :meth:`close`: per run, what is queued, and what this client dead-lettered or lost."""
        counts: Dict[str, List[int]] = {}
        for run_id, queued in (self.outbox.pending_by_run() if self.outbox is not None else {}).items():
            counts.setdefault(run_id, [0, 0, 0])[0] = queued
        with self._lock:
            for run_id, dead in self._dead_lettered.items():
                counts.setdefault(run_id, [0, 0, 0])[1] = dead
            for run_id, _ in self._failed:
                counts.setdefault(run_id, [0, 0, 0])[2] += 1
        if not counts:
            return
        runs = []
        for run_id, (queued, dead, failed) in counts.items():
            parts = [f"{queued} queued in the outbox"] if queued else []
            parts += [f"{dead} dead-lettered"] if dead else []
            parts += [f"{failed} failed"] if failed else []
            runs.append(f"run {run_id}: {', '.join(parts)}")
        where = f" (outbox {self.outbox.directory})" if self.outbox is not None else ""
        self.log.warning("Closed with %d update(s) undelivered%s: %s", sum(map(sum, counts.values())), where, "; ".join(runs))

    def __enter__(self) -> "PrismaAPIClient":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- internals -----------------------------------------------------------------------------

    def _watched_run(self, run_id: str, run: Dict[str, Any]) -> bool:
        """A finished run seen by the run watch: whether it ended elsewhere. While this client's
        own finishing update is in flight, its answer decides instead."""
        with self._state:
            if run_id in self._finishing:
                return False
        return self._observe_run(run_id, {"run": run}, watched=True)

    def _warn_once(self, kind: str, message: str) -> None:
        """A degradation of the run watch: a warning the first time per kind, then debug."""
        with self._state:
            first = kind not in self._warned
            self._warned.add(kind)
        self.log.log(logging.WARNING if first else logging.DEBUG, "%s", message)

    def _record_altered(self, altered: AlteredOutput) -> None:
        with self._lock:
            self._altered.append(altered)

    def _lost(self, run_id: str, what: str, reason: str) -> bool:
        """Remembers an update that will never be delivered, for :meth:`undelivered`; ``False``."""
        with self._lock:
            self._failed.append((run_id, f"Run {run_id}: {what}: {reason}"))
        return False

    def _stage_update(self, run_id: str, stage_number: int, status: str, output: Any, completed: bool,
                      attempt: Optional[Mapping[str, Any]] = None, stage_name: Optional[str] = None) -> bool:
        problem = _stage_number_problem(stage_number, self.stages)
        if problem is not None:
            self.log.error("Run %s: %s; %s not sent", run_id, problem, status)
            return self._lost(run_id, f"stage {stage_number!r} {status}", problem)
        name = stage_name or self.stages[stage_number]
        body: Dict[str, Any] = {"stageNumber": stage_number, "stageName": name, "status": status}
        if attempt is not None:
            body.update(attempt)
        if output is not None:
            text = output if isinstance(output, str) else _json_text(output)
            if isinstance(text, Exception):
                reason = f"{type(text).__name__}: {text}".split("\n")[0][:200]
                text = f"{UNSERIALISABLE_OUTPUT_PREFIX}{reason}]"
                self.log.warning("Run %s: stage %d %s: the output cannot be serialised as JSON (%s); a placeholder was sent instead",
                                 run_id, stage_number, status, reason)
                self._record_altered(AlteredOutput(
                    run_id, stage_number, "unserialisable",
                    f"output cannot be serialised as JSON ({reason}); a placeholder was sent instead", reason=reason))
            storable, replaced = to_storable_text(text)
            if replaced:
                self.log.warning(
                    "Run %s: stage %d %s: replaced %d character(s) PostgreSQL cannot store (NUL, lone UTF-16 surrogates) "
                    "in the output with U+FFFD", run_id, stage_number, status, replaced)
                self._record_altered(AlteredOutput(
                    run_id, stage_number, "replaced",
                    f"{replaced} character(s) PostgreSQL cannot store replaced with U+FFFD", replaced_characters=replaced))
            body["output"] = storable
        if completed:
            body["completedAt"] = utc_timestamp()
            self.stop_heartbeats(run_id)
        finishing = status in ("FAILED", "CANCELLED") or (status == "COMPLETED" and stage_number == max(self.stages))
        sent = self._submit(run_id, "stage-update", encode_json(body), f"stage {stage_number} {status}", stage_number, finishing=finishing)
        if status == "PROCESSING" and self.heartbeat_interval is not None and self.run_finished(run_id) is None \
                and not self.run_deleted(run_id):
            self.start_heartbeats(run_id, stage_number)
        return sent

    def _submit(self, run_id: str, route: str, body: bytes, what: str, stage_number: Optional[int] = None,
                finishing: bool = False, progress: bool = False, outcome: Optional[Dict[str, Any]] = None) -> bool:
        """Delivers one update (or queues it); the one path of every write of a run. ``outcome``
        (streamed output chunks): gets the ``answer``, or the error that ``refused`` it for good,
        which is then neither logged nor dead-lettered here (the stream logs one line), or the
        run as stored when it was ``finished`` elsewhere (logged here; the stream logs nothing more)."""
        if not is_valid_run_id(run_id):
            self.log.error("Run %r: %s not sent: the run id is outside the contract's rule "
                           "(1-128 characters of A-Z a-z 0-9 . _ ~ : -, not dots only)", run_id, what)
            return self._lost(str(run_id), what, "invalid run id")
        if self._closed.is_set():
            closed = ClientClosedError()
            self.log.error("Run %s: %s not sent: %s", run_id, what, closed)
            if outcome is not None:
                outcome["failed"] = closed
            return self._lost(run_id, what, str(closed))
        if self.run_deleted(run_id):
            # The deletion was logged once, at warning; each update not sent after it is a debug note.
            self.log.debug("Run %s: %s not sent: the run was deleted on the server", run_id, what)
            if outcome is not None:
                outcome["finished"] = {"id": run_id, "status": "deleted"}
            return False
        finished = self.run_finished(run_id)
        if finished is not None:
            self.log.warning("Run %s: %s not sent: the run was finished elsewhere (%s%s)", run_id, what, finished.get("status"),
                             f": {finished['error']}" if finished.get("error") else "")
            if outcome is not None:
                outcome["finished"] = finished
            return False
        update = _Update(run_id, "POST", route_path(route, run_id), str(uuid.uuid4()), body, what, stage_number, finishing, progress)
        started = time.time()
        if finishing:
            # Its answer says whether this client finished the run: the run watch waits for it.
            with self._state:
                self._finishing.add(run_id)
        try:
            return self._deliver(update, started, outcome)
        finally:
            if finishing:
                with self._state:
                    self._finishing.discard(run_id)

    def _deliver(self, update: "_Update", started: float, outcome: Optional[Dict[str, Any]] = None) -> bool:
        run_id = update.run_id
        with self._lock:
            if self.outbox is not None and self.outbox.pending_count(run_id) > 0:
                self._enqueue(update, started, "the run's earlier updates are still queued", next_attempt_at=0.0)
                return True
            while True:
                failures: List[PipelineStatusError] = []
                try:
                    answer = self._send_with_retries(Request(update.method, update.route, update.unique, update.body),
                                                     f"Run {run_id}: {update.what}", failures)
                except PipelineStatusError as error:
                    update.unanswered = update.unanswered or _unanswered_cause(failures)
                    if len(failures) > 1:  # an earlier attempt was sent and failed
                        self._note_waited(run_id)
                    kind = self._classify_failure(update, error)
                    if kind == "cut":
                        continue
                    if kind == "superseded":
                        self.log.warning("Run %s: %s refused: the run was finished elsewhere", run_id, update.what)
                        if outcome is not None:
                            outcome["finished"] = self.run_finished(run_id) or {}
                        return False
                    if kind == "dead-letter" and outcome is not None:
                        outcome["refused"] = error
                        return False
                    return self._after_failure(update, error, started, kind, outcome)
                if failures:  # an earlier attempt was sent and failed
                    self._note_waited(run_id)
                if outcome is not None:
                    outcome["answer"] = answer
                else:
                    self._note_conflict(run_id, update.what, answer)
                self._note_completion(run_id, update.route, answer, update.unanswered or _unanswered_cause(failures))
                elsewhere = self._observe_run(run_id, answer, update.finishing and answer.get("outcome") != "stale")
                # A stale answer stored nothing: the run was finished before this update arrived.
                if elsewhere and answer.get("outcome") == "stale":
                    if outcome is not None:
                        outcome["finished"] = self.run_finished(run_id) or {}
                    return False
                self._note_stale_attempt(run_id, update.what, update.body, answer)
                return True

    def _classify_failure(self, update: _Update, error: PipelineStatusError) -> str:
        """The one failure table of the client, for the first send and for a redelivery alike (as
        the TypeScript client's ``classifyFailure``): the run finished elsewhere → ``superseded``
        (a refusal never comes from the update itself finishing the run); 413 → ``cut`` (the
        output cut to fit, ``update`` changed, a new key) or ``dead-letter`` when it cannot be cut;
        401/403 → ``slow-queue``; retriable → ``queue``; any other 4xx → ``dead-letter``; anything
        else → ``other``."""
        if self._learn_from_refusal(update.run_id, error, False):
            return "superseded"
        self._note_waited(update.run_id)
        if isinstance(error, StatusHttpError) and error.status == 413:
            return "cut" if self._fit(update, error) else "dead-letter"
        if is_auth_refusal(error):
            return "slow-queue"
        if is_retriable(error):
            return "queue"
        return "dead-letter" if isinstance(error, StatusHttpError) else "other"

    def _after_failure(self, update: _Update, error: PipelineStatusError, started: float, kind: str,
                       outcome: Optional[Dict[str, Any]] = None) -> bool:
        if self.outbox is not None and kind == "queue":
            self._enqueue(update, started, str(error), next_attempt_at=time.time() + self.retry.delay(1, getattr(error, "retry_after", None)))
            return True
        if self.outbox is not None and kind == "slow-queue":
            self._enqueue(update, started, str(error), next_attempt_at=time.time() + self.slow_retry_interval, refused=True)
            self.log.error("Run %s: %s refused (%s); check that the runner's secret matches the web app's. Queued in the outbox "
                           "and retried every %g s, so it is delivered once the secret is fixed", update.run_id, update.what, error,
                           self.slow_retry_interval)
            return True
        if self.outbox is not None and kind == "dead-letter" and isinstance(error, StatusHttpError):
            self.outbox.add_dead_letter(update.unique, update.run_id, update.method, update.route, update.body, update.what,
                                        started, error.status, error.code, str(error))
            self._count_dead_letter(update.run_id)
            self.log.error("Run %s: %s dead-lettered: %s (kept in %s)", update.run_id, update.what, error, self.outbox.path)
            return False
        if outcome is not None:
            # A lost chunk ends its output stream, which logs the one line (cause and fix).
            outcome["failed"] = error
        else:
            self._log_lost(update.run_id, update.what, error)
        return self._lost(update.run_id, update.what, str(error))

    def _log_lost(self, run_id: str, what: str, error: PipelineStatusError) -> None:
        """An update lost for good (no outbox): one error per run and cause, in the TypeScript
        client's words, so a wrong secret reads as one line, not one per update; the same cause
        again in that run is a debug line."""
        reason = _failure_reason(error)
        with self._state:
            logged = self._logged_causes.get(run_id, set())
            first = reason not in logged
            logged.add(reason)
            self._logged_causes[run_id] = logged  # the run most recently failing: kept longest
        if not first:
            self.log.debug("Run %s: %s was not delivered either: %s", run_id, what, reason)
            return
        fix = "; check that the runner's secret (WEBHOOK_SECRET) matches the web app's" if is_auth_refusal(error) else ""
        self.log.error("Run %s: %s was not delivered: %s%s. Later updates of this run failing the same way are logged at debug level",
                       run_id, what, reason, fix)

    def _count_dead_letter(self, run_id: str, entry: Optional[OutboxEntry] = None) -> None:
        """Counts a dead letter of the run; ``entry``: the outbox entry it was, which, when an
        earlier process left it, no longer says anything of the run (:meth:`_inherited_of`)."""
        with self._lock:
            self._dead_lettered[run_id] = self._dead_lettered.get(run_id, 0) + 1
        if entry is not None and entry.seq in self._inherited_seqs:
            with self._state:
                self._inherited_dead.add(entry.seq)

    def _inherited_of(self, run_id: str) -> Optional[InheritedStages]:
        """Per stage, what the earlier process's updates of the run say, less those dead-lettered
        since (``not_dead_lettered``, the one rule, as the TypeScript client's): read when the
        run is read for the restart rule (:meth:`_restart_base`), not when the outbox was opened.
        Called with ``_state`` held (it guards ``_inherited_dead``)."""
        return inherited_stages(not_dead_lettered((e for e in self._left_behind if e.run_id == run_id), self._inherited_dead)).get(run_id)

    def _note_waited(self, run_id: str) -> None:
        """One of this client's requests for the run was sent or queued and got no answer showing
        the run: a finish learned later may have come after it, so it is no sign of a reused id."""
        with self._state:
            self._waited.add(run_id)

    def _enqueue(self, update: _Update, first_attempt_at: float, why: str, next_attempt_at: float, refused: bool = False) -> None:
        assert self.outbox is not None
        self._note_waited(update.run_id)
        self.outbox.append(update.unique, update.run_id, update.method, update.route, update.body, update.what,
                           first_attempt_at, next_attempt_at, None if next_attempt_at == 0.0 else why, refused,
                           coalesce=update.progress, unanswered=update.unanswered is not None)
        # Behind earlier updates is the expected path during an outage: info, not one warning per update.
        level = logging.INFO if next_attempt_at == 0.0 else logging.WARNING
        self.log.log(level, "Run %s: %s queued in the outbox (%s); it will be delivered in order", update.run_id, update.what, why)
        self._wake.set()

    def _fit(self, update: _Update, error: StatusHttpError) -> bool:
        """Cuts a refused stage update's output to the limit the 413 states; a new update (new key)."""
        if not update.route.endswith("/stage-update") or update.body is None:
            return False
        body = json.loads(update.body.decode("utf-8"))
        problem = error.problem or {}
        stated = next((v for v in (problem.get("maxBytes"), problem.get("maxBodyBytes")) if isinstance(v, int) and v > 0), None)
        limit = stated if stated is not None else len(update.body) // 2
        fitted = fit_stage_update(body, limit)
        if fitted is None:
            return False
        new_body, before, after = fitted
        stage_number = body.get("stageNumber") if isinstance(body.get("stageNumber"), int) else update.stage_number
        limit_text = f" ({stated} bytes)" if stated is not None else ""
        self._record_altered(AlteredOutput(
            update.run_id, stage_number, "truncated",
            f"output truncated from {before} to {after} bytes to fit the server's body limit{limit_text}",
            bytes_before=before, bytes_after=after, limit=stated))
        self.log.warning("Run %s: %s: the server refused the body as too large (413%s); sending it again with the output cut "
                         "from %d to %d bytes, ending with the truncation marker", update.run_id, update.what,
                         f", limit {stated} bytes" if stated is not None else "", before, after)
        update.body = encode_json(new_body)
        update.unique = str(uuid.uuid4())
        return True

    def _check_open(self) -> None:
        """Raises :class:`ClientClosedError` once the client was closed: nothing is sent after :meth:`close`."""
        if self._closed.is_set():
            raise ClientClosedError()

    def _read(self, request: Request) -> Dict[str, Any]:
        """A request whose answer the caller returns (reads, the run's creation): refused once closed, else retried."""
        self._check_open()
        return self._send_with_retries(request)

    def _send_with_retries(self, request: Request, what: Optional[str] = None,
                           failures: Optional[List[PipelineStatusError]] = None) -> Dict[str, Any]:
        """One request, retried with the same key while it may pass, up to ``retry.attempts``.
        Each retry is a warning with its cause and wait (issue 10 item 7), in the TypeScript
        client's words: ``Run r1: stage 1 PROCESSING failed (HTTP 503 database_unavailable);
        attempt 2 of 5 (retry 1 of 4) in 0.30 s``; ``what`` defaults to the method and path.
        ``failures`` gets the error of every failed attempt, in order."""
        label = what or f"{request.method} {self._transport.base_path}/{request.route}"
        attempt = 1
        while True:
            try:
                return self._transport.send(request)
            except PipelineStatusError as error:
                if failures is not None:
                    failures.append(error)
                if not is_retriable(error) or attempt >= self.retry.attempts or self._closed.is_set():
                    raise
                wait = self.retry.delay(attempt, getattr(error, "retry_after", None))
                self.log.warning("%s failed (%s); %s in %.2f s", label, _cause(error),
                                 describe_retry(attempt, self.retry.attempts), wait)
                attempt += 1
                time.sleep(wait)

    def _observe_run(self, run_id: str, answer: Mapping[str, Any], self_finishing: bool = False, read: bool = False,
                     watched: bool = False) -> bool:
        """The one place that reads the run out of an answer (stage update, completion,
        heartbeat, status, the run watch). Returns whether the run is known to be finished by
        someone else; the first time, stops its heartbeats and calls ``on_run_finished``.
        ``self_finishing``: the answer is to this client's own update that finished the run;
        ``read``, ``watched``: it is no answer to this client's own update or heartbeat."""
        run = answer.get("run")
        if not isinstance(run, dict):
            return False
        with self._state:
            self._runs[run_id] = dict(run)
            if run.get("status") not in FINAL_RUN_STATUSES:
                self._seen_open.add(run_id)
                return False
            known = self._finished.get(run_id)
            if known is not None:
                return known != "self"
            if self_finishing:
                self._finished[run_id] = "self"
                return False
            self._finished[run_id] = dict(run)
            own = not read and not watched and run_id not in self._seen_open
            before_first_update = own and run_id not in self._waited
            # It ended while this client's updates waited in the outbox: the outbox's warning
            # (:meth:`_supersede`) says so, once; this line is the record of who ended it.
            waited = own and run_id in self._waited and self.outbox is not None and self.outbox.pending_count(run_id) > 0
            watch = self._watches.get(run_id)
        if watch is not None:
            watch.event.set()
            watch.stop()
        self.stop_heartbeats(run_id)
        # A status read is how a reader learns anything: no warning for it.
        self.log.log(logging.INFO if read or waited else logging.WARNING, "%s", describe_run_finished(run, before_first_update, waited))
        if self.on_run_finished is not None:
            try:
                self.on_run_finished(run_id, dict(run))
            except Exception:  # a broken callback must not break reporting
                self.log.exception("Run %s: on_run_finished raised", run_id)
        return True

    def _run_deleted(self, run_id: str) -> None:
        """The run watch read ``: closed deleted``: the run is gone. As the TypeScript runner's
        run-end handling: the watch and the heartbeats stop, :meth:`cancelled` is set, nothing
        more is sent, and one warning names the cause (not ``on_run_finished``: no run is left)."""
        with self._state:
            if run_id in self._finished:
                return  # already finished (by this client or elsewhere): nothing left to stop
            self._finished[run_id] = "deleted"
            watch = self._watches.get(run_id)
        if watch is not None:
            watch.event.set()
            watch.stop()
        self.stop_heartbeats(run_id)
        self.log.warning("Run %s was deleted on the server while it ran (its live stream ended with ': closed deleted %s': "
                         "the app deleted it, or someone by hand): cancelled(run_id) is set, run_stage_with_retries raises "
                         "RunDeletedError, and nothing more is sent for the run (its updates would be answered 404 run_not_found)",
                         run_id, run_id)

    def _learn_from_refusal(self, run_id: str, error: PipelineStatusError, self_finishing: bool) -> bool:
        """A 409 ``run_finished``: learns the run from the problem, or else from ``GET /status``
        (one attempt). Returns whether the run was finished by someone else."""
        # stage_finished too: a stage the runner still runs was finished by a cancel or the sweeper.
        if not (isinstance(error, StatusHttpError) and error.status == 409 and error.code in ("run_finished", "stage_finished")):
            return False
        with self._state:
            known = self._finished.get(run_id)
        if known is not None:
            return known != "self"
        carried = (error.problem or {}).get("run")
        if isinstance(carried, dict):
            return self._observe_run(run_id, {"run": carried}, self_finishing)
        try:
            answer = self._transport.send(Request("GET", route_path("status", run_id), str(uuid.uuid4())))
        except PipelineStatusError:
            return False
        return self._observe_run(run_id, answer, self_finishing)

    def _with_seq(self, run_id: str, stage_number: Optional[int], progress: Mapping[str, Any]) -> Dict[str, Any]:
        """``progress`` with its ``seq``: per run and stage, increasing, never below now in ms."""
        key = (run_id, stage_number)
        with self._state:
            seq = max(self._progress_seq.get(key, -1) + 1, int(time.time() * 1000))
            self._progress_seq[key] = seq
        return {**progress, "seq": seq}

    def _deliver_due(self) -> None:
        """Tries the due head of every run's queue once, in order, until none is due."""
        assert self.outbox is not None
        progressed = True
        while progressed and not self._closed.is_set():
            progressed = False
            now = time.time()
            for head in self.outbox.heads():
                if head.next_attempt_at > now:
                    continue
                with self._lock:
                    if not self.outbox.claim(head.seq, self._transport.timeout + 5):
                        continue
                    if self._redeliver(head):
                        progressed = True

    def _redeliver(self, entry: OutboxEntry) -> bool:
        """One attempt of a queued update; whether the run's queue moved on."""
        assert self.outbox is not None
        now = time.time()
        if now - entry.first_attempt_at > self.max_age:
            reason = f"expired: undelivered {round(now - entry.first_attempt_at)} s after its first attempt (max_age {self.max_age:g} s)"
            self.outbox.dead_letter(entry, None, None, reason)
            self._count_dead_letter(entry.run_id, entry)
            self.log.error("Run %s: %s dead-lettered: %s (kept in %s)", entry.run_id, entry.what, reason, self.outbox.path)
            self._completion_left(entry, "dead-lettered", reason=reason)
            return True
        # Queued, maybe by an earlier process: it waited, so the run may have ended after it was queued.
        self._note_waited(entry.run_id)
        try:
            answer = self._transport.send(Request(entry.method, entry.route, entry.id, entry.body))
        except PipelineStatusError as error:
            update = _Update(entry.run_id, entry.method, entry.route, entry.id, entry.body, entry.what)
            kind = self._classify_failure(update, error)
            if kind == "cut":
                self.outbox.replace(entry.seq, update.unique, update.body or b"")
                return True
            if kind == "slow-queue":
                self.outbox.reschedule(entry.seq, time.time() + self.slow_retry_interval, str(error), refused=True)
                self.log.error("Run %s: %s (from the outbox) refused (%s); check that the runner's secret matches the web app's. "
                               "Kept queued, retried in %g s", entry.run_id, entry.what, error, self.slow_retry_interval)
                return False
            if kind == "queue":
                wait = self.retry.delay(entry.attempts + 1, getattr(error, "retry_after", None))
                self.outbox.reschedule(entry.seq, time.time() + wait, str(error), unanswered=_unanswered_cause([error]) is not None)
                self.log.warning("Run %s: %s (from the outbox) failed (%s); next attempt in %.2f s", entry.run_id, entry.what,
                                 _cause(error), wait)
                return False
            status = error.status if isinstance(error, StatusHttpError) else None
            code = error.code if isinstance(error, StatusHttpError) else None
            # Only a run ended elsewhere: a runner contradicting its own finished run is a dead letter.
            if kind == "superseded":
                self._supersede(entry, status, code, f"{error}; the run ended elsewhere")
                self._completion_left(entry, "superseded", reason=f"{error}; the run ended elsewhere")
                return True
            self.outbox.dead_letter(entry, status, code, str(error))
            self._count_dead_letter(entry.run_id, entry)
            self.log.error("Run %s: %s dead-lettered: %s (kept in %s)", entry.run_id, entry.what, error, self.outbox.path)
            self._completion_left(entry, "dead-lettered", reason=str(error))
            if status is not None:
                self._dead_letter_cascade(entry, str(error))
            return True
        stale = answer.get("outcome") == "stale"
        completion = entry.route.endswith("/complete")
        # Accepted (2xx), so it leaves the outbox; but what the server did with it cannot be read.
        unreadable = completion and not is_complete_run_response(answer)
        self._note_conflict(entry.run_id, f"{entry.what} (from the outbox)", answer)
        if not unreadable:
            self._note_completion(entry.run_id, entry.route, answer,
                                  "an earlier attempt of it got no definite answer" if entry.unanswered else None)
        elsewhere = self._observe_run(entry.run_id, answer, _finishing(entry.route, entry.body, max(self.stages)) and not stale)
        if elsewhere and stale:
            # Answered but not stored: the run had ended elsewhere.
            self._supersede(entry, None, None, "not stored: the run ended elsewhere")
            return True
        self.outbox.ack(entry.seq)
        if unreadable:
            what = "is not JSON" if isinstance(answer, UnreadableAnswer) and not answer.is_json else "does not match the contract"
            self.log.error("Run %s: %s delivered from the outbox got an answer that %s; its outcome is unknown",
                           entry.run_id, entry.what, what)
            self._completion_left(entry, "unknown", reason=f"the server accepted it (2xx), but its answer {what}: "
                                                           "whether its results reached the app's onRunCompleted hook is unknown")
        elif completion:
            outcome = "duplicate" if answer.get("outcome") == "duplicate" else "applied"
            # A duplicate was said (one warning, with its cause) by _note_completion above.
            if outcome == "applied":
                self.log.info("Run %s: %s delivered from the outbox (outcome applied: its results reached the app's onRunCompleted hook)",
                              entry.run_id, entry.what)
            self._completion_left(entry, outcome, answer=dict(answer))
        else:
            self.log.info("Run %s: %s delivered from the outbox", entry.run_id, entry.what)
        return True

    def _dead_letter_cascade(self, refused: OutboxEntry, cause: str) -> None:
        """A chunk cascade, as the TypeScript outbox's: once the server refused a queued output chunk
        for good, the later chunks of that stage attempt queued behind it (up to the stage's next
        status change, which may start a new attempt) cannot be applied, since the server applies a
        stage's chunks only in order (each would be refused ``409 output_out_of_order``). They are
        dead-lettered unsent (:data:`EARLIER_CHUNK_DEAD_LETTERED`), each kept and counted as its
        own dead letter, with one error line for all of them after the refused chunk's. Not after
        a chunk dead-lettered for its age (the caller's rule): an unanswered attempt of it may have
        been stored."""
        assert self.outbox is not None
        first = _chunk_of(refused)
        if first is None:
            return
        stage, first_seq = first
        seqs: List[int] = []
        for later in self.outbox.pending(refused.run_id):
            if later.seq <= refused.seq:
                continue
            if _status_change_stage(later) == stage:
                break
            chunk = _chunk_of(later)
            if chunk is None or chunk[0] != stage or chunk[1] <= first_seq:
                continue
            self.outbox.dead_letter(later, None, None, EARLIER_CHUNK_DEAD_LETTERED)
            self._count_dead_letter(later.run_id, later)
            seqs.append(chunk[1])
        if not seqs:
            return
        count = len(seqs)
        which = f"chunk {seqs[0]}" if count == 1 else f"chunks {min(seqs)} to {max(seqs)}"
        self.log.error(
            "Run %s: %d later chunk%s of the streamed output of stage %d (%s) dead-lettered unsent, because stage %d output chunk %d "
            "was (%s): the server applies a stage's chunks only in order, so none after a missing one can be stored. Kept in %s "
            "(client.dead_letters()); the output sent with the stage's COMPLETED replaces the streamed text, so only the text "
            "streamed so far is lost: fix the cause of chunk %d's refusal (logged above)",
            refused.run_id, count, "" if count == 1 else "s", stage, which, stage, first_seq, cause, self.outbox.path, first_seq)

    def _completion_left(self, entry: OutboxEntry, outcome: str, answer: Optional[Dict[str, Any]] = None,
                         reason: Optional[str] = None) -> None:
        """Tells ``on_queued_completion`` how a queued completion came out; other updates are not told."""
        if not entry.route.endswith("/complete") or self.on_queued_completion is None:
            return
        try:
            self.on_queued_completion(QueuedCompletion(
                entry.run_id, entry.id, outcome, answer, reason,
                # As the TypeScript client: only a duplicate names the unanswered attempt it may answer.
                unanswered_attempt=outcome == "duplicate" and entry.unanswered,
                earlier_process=entry.seq in self._inherited_seqs))
        except Exception:  # a broken callback must not break delivery
            self.log.exception("Run %s: on_queued_completion raised", entry.run_id)

    def _note_stale_attempt(self, run_id: str, what: str, body: bytes, answer: Mapping[str, Any]) -> None:
        """Logs once at INFO that a stage update with an attempt was answered ``stale`` for a run
        still running: the server kept a higher attempt and stored nothing of this one."""
        if answer.get("outcome") != "stale":
            return
        try:
            sent = json.loads(body).get("attempt")
        except (ValueError, AttributeError):
            sent = None
        if sent is None:
            return
        stage = answer.get("stage")
        kept = stage.get("attempt") if isinstance(stage, dict) else None
        self.log.info("Run %s: %s attempt %s not stored: the server kept a higher attempt%s (outcome stale)",
                      run_id, what, sent, f" ({kept})" if kept is not None else "")

    def _note_conflict(self, run_id: str, what: str, answer: Mapping[str, Any]) -> None:
        """An answer ``conflict``: the stage was already final with another output, which the server
        kept; this update's output was not stored. A warning with its cause and fix (the update is
        delivered: the mark methods return ``True``), as the TypeScript client logs it."""
        if answer.get("outcome") != "conflict":
            return
        stage = answer.get("stage") if isinstance(answer.get("stage"), dict) else {}
        self.log.warning(
            "Run %s: %s: the server already had stage %s %s with another output and kept it (outcome \"conflict\"); "
            "this output was not stored. " + CONFLICT_CAUSE_AND_FIX,
            run_id, what, stage.get("stageNumber"), stage.get("status"))

    def _note_completion(self, run_id: str, route: str, answer: Mapping[str, Any], unanswered: Optional[str]) -> None:
        """The answer to a ``/complete``: remembers its ``outcome`` (:meth:`completion_outcome`) and
        says a ``duplicate`` in one warning (the TypeScript ``duplicateCompletion``'s rule): the
        app's hook ran with an earlier completion's results, not these; or, when ``unanswered`` (the
        cause of an earlier attempt of this completion that got no definite answer) is given, the
        ``duplicate`` may be the server's answer to that attempt, and the warning says both."""
        if not route.endswith("/complete"):
            return
        outcome = answer.get("outcome")
        with self._state:
            earlier = self._completions.get(run_id)
            if isinstance(outcome, str):
                self._completions[run_id] = outcome
        if outcome != "duplicate":
            return
        if unanswered is not None:
            self.log.warning(
                "Run %s: The run's completion was answered \"duplicate\" after %s, so that attempt may have been received: "
                "if it was, the app's onRunCompleted hook ran once with these results; if another /complete of this run "
                "(another runner or process on the same run id, or the web app) was received first, these results did not reach it",
                run_id, unanswered)
            return
        cause = ("this client's own earlier complete_run of this run" if earlier == "applied" else
                 "another /complete of this run was received first (another runner or process on the same run id, or the web app)")
        self.log.warning("Run %s: %s%s", run_id, DUPLICATE_COMPLETION, cause)

    def _supersede(self, entry: OutboxEntry, status: Optional[int], code: Optional[str], reason: str) -> None:
        """Keeps a queued update of a run that ended elsewhere as ``superseded`` (not a dead
        letter); one warning per run, not an error."""
        assert self.outbox is not None
        self.outbox.dead_letter(entry, status, code, reason, kind="superseded")
        with self._state:
            first = entry.run_id not in self._superseded_runs
            self._superseded_runs.add(entry.run_id)
        if first:
            self.log.warning("Run %s ended elsewhere while its updates waited in the outbox; the ones the server refuses are "
                             "superseded, not undelivered (kept in %s with kind 'superseded')", entry.run_id, self.outbox.path)
        else:
            self.log.debug("Run %s: %s superseded: %s", entry.run_id, entry.what, reason)

    def _background(self) -> None:
        assert self.outbox is not None
        while not self._closed.is_set():
            try:
                self._deliver_due()
                next_due = self.outbox.next_due()
            except Exception:  # a background thread must not die of one bad moment
                self.log.exception("the outbox's background delivery failed; trying again")
                next_due = time.time() + 5
            wait = 60.0 if next_due is None else max(0.05, min(60.0, next_due - time.time()))
            self._wake.wait(wait)
            self._wake.clear()


def describe_run_finished(run: Mapping[str, Any], finished_before_first_update: bool, waited: bool = False) -> str:
    """What happened to a run finished by someone else, and the likely cause, from the run as
    stored (the same text as the TypeScript client's): a finish before this client's first update
    was sent (``finished_before_first_update``: the server's first answer to this client's
    requests for the run showed it finished, and none of them had gone unanswered or waited
    before) means a reused run id; a finish first learned from the answer to updates that waited
    in the outbox (``waited``) means it ended while they waited; else the sweeper's reason, a
    cancel, or another party's completion or failure. The order is the server's: the run's
    ``completedAt`` is never compared with this client's clock, which may be off."""
    status, error, completed = run.get("status"), run.get("error"), run.get("completedAt")
    reason = f" (error: {json.dumps(error, ensure_ascii=False)})" if error else ""
    if finished_before_first_update:
        cause = (f"it finished before this client's first update for it: the run id was most likely reused (an earlier run, "
                 f"or another runner, used \"{run.get('id')}\"); give each run a new id")
    elif waited:
        cause = "it ended while this client's updates for it waited in the outbox"
    elif status == "FAILED" and isinstance(error, str) and re.match(r"No (?:heartbeat|update) for ", error):
        cause = ("the stale-run sweeper failed it because the runner was silent too long (a blocked event loop, the web app "
                 "unreachable, or a heartbeat interval the server's staleAfterMs does not allow)")
    elif status == "CANCELLED":
        cause = "the web app cancelled it (POST /cancel), or another runner reporting under the same run id cancelled a stage"
    else:
        cause = (f"another party {'completed' if status == 'COMPLETED' else 'failed'} it: a /complete call or a stage update not "
                 "sent by this client (another runner using the same run id, or an earlier run with it)")
    at = f" at {completed}" if isinstance(completed, str) else ""
    return f"Run {run.get('id')} was {status}{reason} on the server{at}, not by this client: {cause}"


#: The reason of an output chunk the outbox dead-letters unsent because an earlier chunk of the same
#: stage attempt was refused for good (the TypeScript client's ``EARLIER_CHUNK_DEAD_LETTERED``).
EARLIER_CHUNK_DEAD_LETTERED = "an earlier chunk of this stage's output was dead-lettered"


def _chunk_of(entry: OutboxEntry) -> Optional[Tuple[int, int]]:
    """``(stage, seq)`` of a queued streamed output chunk; ``None`` for any other update."""
    match = re.search(r"/stages/(\d+)/output$", entry.route)
    if match is None:
        return None
    try:
        seq = json.loads(entry.body or b"{}").get("seq")
    except (ValueError, AttributeError):
        return None
    return (int(match.group(1)), seq) if isinstance(seq, int) else None


def _status_change_stage(entry: OutboxEntry) -> Optional[int]:
    """The stage of a queued stage update that changes its status (not a progress report); else ``None``."""
    if not entry.route.endswith("/stage-update"):
        return None
    try:
        body = json.loads(entry.body or b"{}")
    except ValueError:
        return None
    if not isinstance(body, dict) or body.get("progress") is not None:
        return None
    stage = body.get("stageNumber")
    return stage if isinstance(stage, int) else None


def _stage_number_problem(stage_number: Any, stages: Mapping[int, str]) -> Optional[str]:
    """Why ``stage_number`` is refused, as one sentence, or ``None`` for a stage of the catalogue:
    the rule of the TypeScript client's ``stageNumberProblem`` (an integer, not a bool nor the
    string ``'2'`` of a parsed form, and one of the catalogue's stages).

    >>> _stage_number_problem("2", {1: "a", 2: "b"})
    'The stage number must be an integer (1, 2 in the catalogue), got a string: "2" (pass the number 2)'
    """
    catalogue = ", ".join(map(str, stages))
    if not isinstance(stage_number, int) or isinstance(stage_number, bool):
        if isinstance(stage_number, str):
            got = "a string: " + json.dumps(stage_number[:64] + ("\u2026" if len(stage_number) > 64 else ""), ensure_ascii=False)
            hint = f" (pass the number {int(stage_number.strip())})" if re.fullmatch(r"\s*[0-9]+\s*", stage_number) else ""
        else:
            got, hint = f"{type(stage_number).__name__} {stage_number!r}", ""
        return f"The stage number must be an integer ({catalogue} in the catalogue), got {got}{hint}"
    if stage_number not in stages:
        return f"Stage {stage_number} is not in the catalogue ({catalogue})"
    return None


def _finishing(route: str, body: Optional[bytes], last_stage: int) -> bool:
    """Whether a queued update may finish its run (see ``_Update.finishing``)."""
    if route.endswith("/complete"):
        return True
    try:
        update = json.loads((body or b"{}").decode("utf-8"))
    except ValueError:
        return False
    status = update.get("status") if isinstance(update, dict) else None
    return status in ("FAILED", "CANCELLED") or (status == "COMPLETED" and update.get("stageNumber") == last_stage)


def _completion_problem(completed_at: Any, duration: Any) -> Optional[str]:
    """Why the server would refuse a completion's ``completed_at`` or ``duration`` (400), naming the
    argument; ``None`` when it takes them. NaN and ±Infinity durations are sent as ``null``."""
    if completed_at is not None and completed_at != "" and not isinstance(completed_at, datetime):
        if not isinstance(completed_at, str):
            return f"completed_at must be a datetime or an ISO 8601 string, got {type(completed_at).__name__}: {completed_at!r}"
        problem = timestamp_problem(completed_at)
        if problem is not None:
            return f"completed_at {problem}, got {completed_at!r}"
    if duration is not None:
        if isinstance(duration, bool) or not isinstance(duration, (int, float)):
            return f"duration must be a number of seconds, got {type(duration).__name__}: {duration!r}"
        if math.isfinite(duration) and duration < 0:
            return f"duration must be 0 or more seconds, got {duration!r}"
    return None


def _unanswered_cause(failures: Sequence[PipelineStatusError]) -> Optional[str]:
    """Of the failed attempts of one update, the first that may have been stored though its answer
    never came (a timeout, a reset: not a refused connection nor an unknown host; or a gateway's
    502/504, whose server behind may have taken it), as ``an earlier attempt of it got no definite
    answer (<cause>)``; ``None`` when every failure was a definite answer."""
    for error in failures:
        if isinstance(error, StatusNetworkError):
            cause = error.__cause__
            reason = getattr(cause, "reason", cause)
            if isinstance(reason, (ConnectionRefusedError, socket.gaierror)):
                continue
        elif not (isinstance(error, StatusHttpError) and error.status in (502, 504)):
            continue
        return f"an earlier attempt of it got no definite answer ({_cause(error)})"
    return None



def _failure_reason(error: PipelineStatusError) -> str:
    """The short reason an update was lost, as the TypeScript client's ``failureReason`` words it:
    ``HTTP 401 unauthorized: X-Webhook-Secret does not match``; a network error's cause
    (``connection refused (ECONNREFUSED)``, ``timed out after 30 s``)."""
    if isinstance(error, StatusHttpError):
        detail = (error.problem or {}).get("detail")
        return f"HTTP {error.status}" + (f" {error.code}" if error.code else "") + (f": {detail}" if isinstance(detail, str) and detail else "")
    return _cause(error)


def _cause(error: PipelineStatusError) -> str:
    """The short cause of a failed attempt: ``HTTP 503 database_unavailable``, ``connection refused (ECONNREFUSED)``."""
    cause = getattr(error, "cause", None)
    return cause if isinstance(cause, str) else str(error)


UNSERIALISABLE_OUTPUT_PREFIX = "[output not serialisable as JSON: "
"""What starts the placeholder sent instead of an output that cannot become JSON:
``[output not serialisable as JSON: <reason>]``, the reason being the error's first line (at most
200 characters), e.g. ``TypeError: Object of type bytes is not JSON serializable``. The same
placeholder as the TypeScript client's ``UNSERIALISABLE_OUTPUT_PREFIX``."""


def _json_text(value: Any) -> Union[str, Exception]:
    """The output's JSON text as the TypeScript client writes it for the same value (NaN and
    ±Infinity as ``null``, :func:`json_safe`), or the error that says why it cannot be JSON."""
    try:
        return json.dumps(json_safe(value), allow_nan=False)
    except (TypeError, ValueError, RecursionError) as error:
        return error


def _progress_fields(progress: Mapping[str, Any]) -> Dict[str, Any]:
    """The progress fields to send: every ``None`` left out, since the contract's progress fields
    are optional, not nullable. NaN and ±Infinity stay, for :func:`progress_problem` to refuse."""
    return {key: value for key, value in dict(progress).items() if value is not None}


__all__ = ["DEFAULT_MAX_AGE", "DEFAULT_SLOW_RETRY_INTERVAL", "UNSERIALISABLE_OUTPUT_PREFIX", "AlteredOutput", "PrismaAPIClient", "Undelivered"]
