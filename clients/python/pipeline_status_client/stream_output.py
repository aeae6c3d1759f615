"""Streamed stage output (docs/contract.md "Timing, attempts and streamed output"), the runner's
side: ``client.stream_output(run_id, stage)`` gives a stream whose ``write(text)`` returns at
once; a background thread sends the text as chunks ``{"seq", "text"}`` to
``POST {base}/{run_id}/stages/{stage}/output``, batched by time and size, through the client's
one delivery path (so in order with the run's updates, and into the outbox like them). Closing
the stream flushes it: close it before the stage's final ``mark_*``. Mirrors
``src/client/output-writer.ts`` of the TypeScript client; standard library only.
"""
import threading
import time
from typing import Any, Dict, List, Optional, Tuple

from .contract import REPLACEMENT_CHARACTER, encode_json, is_valid_run_id, to_storable_text
from .errors import InvalidRunIdError

#: The largest ``text`` of one chunk, in UTF-8 bytes (the contract's ``MAX_OUTPUT_CHUNK_BYTES``).
MAX_OUTPUT_CHUNK_BYTES = 64 * 1024
#: Defaults: send buffered text after 0.25 s, or at once from 16 KiB; at most 1 MiB waits.
DEFAULT_FLUSH_INTERVAL = 0.25
DEFAULT_FLUSH_BYTES = 16 * 1024
DEFAULT_MAX_BUFFERED_BYTES = 1024 * 1024
#: How long ``close`` waits for the text to be delivered, in seconds, by default.
DEFAULT_CLOSE_TIMEOUT = 120.0
#: The fix of a chunk that could not be delivered (the TypeScript client's wording).
UNDELIVERED_FIX = ("give the client an outbox (outbox_dir) so that chunks wait on disk while the server cannot take them, "
                   "or check that the server is reachable from the runner")

#: The fix of a chunk refused with 409 ``run_finished`` when this runner's own report finished the
#: run, e.g. stages run in parallel and the catalogue's last one completed first (the TypeScript wording).
RUN_FINISHED_BY_THIS_RUNNER_FIX = (
    "the run was already finished by this runner's own report (the catalogue's last stage COMPLETED, or a stage FAILED or "
    "CANCELLED): a runner with parallel stages must report the last stage COMPLETED only after every other stage finished "
    "(after a FAILED or CANCELLED stage there is nothing to fix)")


def refusal_fix(status: int, code: Optional[str]) -> str:
    """The fix of a chunk the server refused for good, by its status and problem ``code`` (the
    TypeScript client's ``refusalFix``)."""
    if status == 413:
        return ("stream less text per stage attempt, or raise the server's maxStreamedOutputBytes (its limit of one stage "
                "attempt's streamed text)")
    if code == "output_out_of_order":
        return ("let one stream write a stage attempt (one per stage and attempt); a process that restarts a stage must report "
                "it as a new attempt first (mark_stage_processing and run_stage_with_retries do)")
    if code == "stage_not_started":
        return "report the stage PROCESSING before streaming its output"
    if code == "stage_finished":
        return "close the stream before sending the stage's final status (use it as a context manager)"
    if code == "run_finished":
        # A run finished elsewhere stops the stream quietly: this one was finished by the runner itself.
        return RUN_FINISHED_BY_THIS_RUNNER_FIX
    return "the server refused the chunk itself: report this line as a bug of pipeline_status_client"


def buffer_overflow(size: int, max_buffered_bytes: int) -> Tuple[str, str]:
    """Why a write of ``size`` UTF-8 bytes passed ``max_buffered_bytes``, and the fix (the
    TypeScript client's ``bufferOverflow``): a write larger than the bound on its own says so (no
    server speed would have let it in); otherwise the server took the chunks slower than the
    stage wrote them."""
    if size > max_buffered_bytes:
        return (f"one write of {size} bytes is larger than max_buffered_bytes ({max_buffered_bytes} bytes), the most text "
                "that may wait to be sent",
                "write the text in pieces as it is produced, or raise max_buffered_bytes (the server keeps at most its "
                "maxStreamedOutputBytes of a stage attempt's streamed text, 1 MiB by default)")
    return (f"more than {max_buffered_bytes} bytes waited to be sent (the server takes the chunks slower than the stage "
            "writes them)", "write less often or in larger pieces, or raise max_buffered_bytes")


def run_finished_reason(run_id: str, run: Dict[str, Any]) -> str:
    """Why a chunk of a run finished elsewhere (cancelled, swept, completed elsewhere) was not
    stored: the TypeScript client's ``RunFinishedError`` message. It needs no fix: the client has
    logged the run's end, and the runner should stop the run."""
    reason = run.get("error")
    return f"Run {run_id} is already {run.get('status') or 'finished'}{f' ({reason})' if reason else ''}; the update was not stored"


def utf8_head(text: str, max_bytes: int) -> str:
    """The longest head of ``text`` whose UTF-8 is at most ``max_bytes``, cut between characters."""
    data = text.encode("utf-8")
    if len(data) <= max_bytes:
        return text
    # A character cut in the middle leaves an incomplete sequence at the end: drop it.
    return data[:max_bytes].decode("utf-8", "ignore")


class StageOutputStream:
    """One stage attempt's streamed output; make it with ``client.stream_output(run_id, stage)``.

    ``write(text)`` never blocks and never raises: the text is buffered (NUL and lone surrogates
    replaced with U+FFFD) and a daemon thread sends it, one request in flight at a time, after
    ``flush_interval`` seconds from the first buffered write or at once from ``flush_bytes``
    bytes, in chunks of at most 64 KiB of UTF-8. So a model writing 50 tokens a second makes
    about four requests a second. At most ``max_buffered_bytes`` wait (besides the chunk in
    flight); a write past that is dropped with one warning, and so is every later write
    (:attr:`truncated` says why), while the text accepted before is still sent. A 409 (``stage_not_started``,
    ``output_out_of_order``, ``stage_finished``), a 413 (``output_too_large``), a chunk not
    delivered or a ``conflict`` stops the stream with one warning; later writes are dropped
    silently and :attr:`stopped` says why. A run finished elsewhere (cancelled by the web app,
    failed by the sweeper: ``run_finished``) stops it too, without a line of its own: the client
    has logged the run's end, and :attr:`stopped` says ``Run <id> is already CANCELLED (<reason>);
    the update was not stored``. ``seq`` starts at 0: use one stream per stage
    attempt (after ``mark_stage_retrying``, open a new one).

    A run id outside the contract's rule raises :class:`~pipeline_status_client.errors.InvalidRunIdError`
    (a ``ValueError``) when the stream is made, as a bad stage number or option raises
    ``ValueError``: nothing is sent.

    A context manager: leaving the ``with`` block closes it (flushes, waits up to
    ``close_timeout`` seconds). Call ``mark_stage_complete`` after that.

    Example::

        with client.stream_output(run_id, 4) as out:
            for token in model.stream(prompt):
                out.write(token)
        client.mark_stage_complete(run_id, 4, report)
    """

    def __init__(self, client: Any, run_id: str, stage_number: int, *, flush_interval: float = DEFAULT_FLUSH_INTERVAL,
                 flush_bytes: int = DEFAULT_FLUSH_BYTES, max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
                 close_timeout: float = DEFAULT_CLOSE_TIMEOUT) -> None:
        # The mark_* methods' rule, refused here rather than as a chunk "not delivered: unknown reason".
        if not is_valid_run_id(run_id):
            raise InvalidRunIdError(f"invalid run id {run_id!r}: outside the contract's rule (1-128 characters of A-Z a-z 0-9 . _ ~ : -, "
                                    "not dots only); no output stream opened")
        if not flush_interval >= 0 or not flush_bytes >= 1 or not max_buffered_bytes >= 1 or not close_timeout > 0:
            raise ValueError("flush_interval must be >= 0, flush_bytes and max_buffered_bytes >= 1, close_timeout > 0")
        if isinstance(stage_number, bool) or not isinstance(stage_number, int) or stage_number < 1:
            raise ValueError(f"stage_number must be a positive integer, got {stage_number!r}")
        self._client = client
        self.run_id = run_id
        self.stage_number = stage_number
        self.flush_interval = float(flush_interval)
        self.flush_bytes = min(int(flush_bytes), MAX_OUTPUT_CHUNK_BYTES)
        self.max_buffered_bytes = int(max_buffered_bytes)
        self.close_timeout = float(close_timeout)
        self._cond = threading.Condition()
        self._buffer: List[str] = []
        self._buffered_bytes = 0
        self._held = ""
        self._first_write_at = 0.0
        self._closed = False
        self._seq = 0
        #: Why the stream stopped early, or ``None``.
        self.stopped: Optional[str] = None
        self._logged = False
        #: Why writes are dropped after one passed ``max_buffered_bytes``, or ``None``; the text
        #: accepted before is still sent.
        self.truncated: Optional[str] = None
        #: Chunks delivered (or queued in the outbox) and their UTF-8 bytes.
        self.chunks = 0
        self.bytes = 0
        self._thread: Optional[threading.Thread] = None

    # -- the runner's side ---------------------------------------------------------------------

    def write(self, text: str) -> None:
        """Appends ``text`` to the stage's output; returns at once (see the class notes)."""
        with self._cond:
            if self._closed or self.stopped is not None or self.truncated is not None:
                return
            piece = self._held + (text if isinstance(text, str) else str(text))
            self._held = ""
            # A high surrogate at the end may pair with a low one at the start of the next write.
            if piece and "\ud800" <= piece[-1] <= "\udbff":
                self._held, piece = piece[-1], piece[:-1]
            if piece:
                self._append(to_storable_text(piece)[0])

    def close(self) -> bool:
        """Flushes and ends the stream; waits up to ``close_timeout`` seconds for the text to be
        delivered (or queued). Later writes are dropped. ``True`` when everything written was
        delivered or queued, ``False`` when the stream stopped early (see :attr:`stopped`) or writes
        were dropped past ``max_buffered_bytes`` (see :attr:`truncated`)."""
        with self._cond:
            if not self._closed:
                self._closed = True
                if self._held and self.stopped is None and self.truncated is None:
                    self._append(REPLACEMENT_CHARACTER)
                self._held = ""
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(self.close_timeout)
            if thread.is_alive():
                self._stop(f"the text was not delivered within close_timeout ({self.close_timeout:g} s); what still waited was dropped",
                           "raise close_timeout, or give the client an outbox (outbox_dir) so that the text waits on disk")
        return self.stopped is None and self.truncated is None

    def __enter__(self) -> "StageOutputStream":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- inside --------------------------------------------------------------------------------

    def _append(self, text: str) -> None:
        """Buffers storable text (under the lock) and wakes or starts the sender."""
        size = len(text.encode("utf-8"))
        if self._buffered_bytes + size > self.max_buffered_bytes:
            # What was accepted stays and is still sent; this write and later ones are dropped.
            self.truncated, fix = buffer_overflow(size, self.max_buffered_bytes)
            self._held = ""
            self._log_once("Run %s: stage %d: streamed output truncated: %s. This write and later ones are dropped; "
                           "the text written before is still sent, then the stage's final status. Fix: %s",
                           self.run_id, self.stage_number, self.truncated, fix)
            return
        if self._buffered_bytes == 0:
            self._first_write_at = time.monotonic()
        self._buffer.append(text)
        self._buffered_bytes += size
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"pipeline-status-output-{self.stage_number}", daemon=True)
            self._thread.start()
        self._cond.notify_all()

    def _take(self) -> Optional[str]:
        """Waits until a chunk is due (or the stream ends); the chunk, or ``None`` to stop."""
        with self._cond:
            while True:
                if self.stopped is not None:
                    return None
                if self._buffered_bytes > 0:
                    due = self._first_write_at + self.flush_interval
                    now = time.monotonic()
                    if self._closed or self._buffered_bytes >= self.flush_bytes or now >= due:
                        break
                    self._cond.wait(due - now)
                elif self._closed:
                    return None
                else:
                    self._cond.wait()
            text = "".join(self._buffer)
            head = utf8_head(text, MAX_OUTPUT_CHUNK_BYTES)
            rest = text[len(head):]
            self._buffer = [rest] if rest else []
            self._buffered_bytes = len(rest.encode("utf-8"))
            if rest:
                # What is left is due at once: it waited as long as the head.
                self._first_write_at = time.monotonic() - self.flush_interval
            return head

    def _run(self) -> None:
        while True:
            text = self._take()
            if text is None:
                return
            seq = self._seq
            self._seq += 1
            sent, why, fix, quiet = self._send(seq, text)
            if not sent:
                self._stop(why, fix, quiet)
                return
            with self._cond:
                self.chunks += 1
                self.bytes += len(text.encode("utf-8"))

    def _log_once(self, message: str, *args: Any) -> None:
        """The stream's one log line: its first cause (a later one is in :attr:`stopped`)."""
        if self._logged:
            return
        self._logged = True
        self._client.log.warning(message, *args)

    def _send(self, seq: int, text: str) -> Tuple[bool, str, Optional[str], bool]:
        """Chunk ``seq`` through the client's one delivery path; never raises. Whether it was sent,
        else why not, the fix, and whether the stop is quiet (the client logged the cause)."""
        outcome: Dict[str, Any] = {}
        try:
            delivered = self._client._submit(
                self.run_id, f"stages/{self.stage_number}/output", encode_json({"seq": seq, "text": text}),
                f"stage {self.stage_number} output chunk {seq}", self.stage_number, outcome=outcome)
        except Exception as error:  # a bug must not reach the stage
            return False, f"chunk {seq} not sent: {type(error).__name__}: {error}", "report this line as a bug of pipeline_status_client", False
        finished = outcome.get("finished")
        if not delivered and finished is not None:
            # The run ended elsewhere: the client logged it; no fix applies (stop the run).
            return False, run_finished_reason(self.run_id, finished), None, True
        answer = outcome.get("answer")
        if delivered and isinstance(answer, dict) and answer.get("outcome") == "conflict":
            return False, (f"the server holds other text for chunk {seq} of this attempt (outcome \"conflict\"): another "
                           "process, or an earlier run of this process with the same run_id, streamed different text for the "
                           "same seq of this stage attempt. Fix: let one process stream a stage attempt; a runner that "
                           "restarts a stage must report it as a new attempt (a higher attempt resets the streamed output)"), None, False
        if delivered:
            return True, "", None, False
        refused = outcome.get("refused")
        if refused is not None:
            return (False, f"chunk {seq} was refused: {refused}",
                    refusal_fix(getattr(refused, "status", 0), getattr(refused, "code", None)), False)
        return False, f"chunk {seq} was not delivered: {outcome.get('failed', 'unknown reason')}", UNDELIVERED_FIX, False

    def _stop(self, reason: str, fix: Optional[str] = None, quiet: bool = False) -> None:
        with self._cond:
            self._stop_locked(reason, fix, quiet)

    def _stop_locked(self, reason: str, fix: Optional[str] = None, quiet: bool = False) -> None:
        if self.stopped is not None:
            return
        self.stopped = reason
        self._buffer = []
        self._buffered_bytes = 0
        self._held = ""
        self._cond.notify_all()
        if quiet:
            return
        self._log_once("Run %s: stage %d: streamed output stopped: %s. Later write() calls are dropped; the stage's "
                       "final status and output are still sent%s", self.run_id, self.stage_number, reason,
                       "" if fix is None else f". Fix: {fix}")
