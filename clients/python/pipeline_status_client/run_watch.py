"""The run watch behind ``client.cancelled(run_id)``: a daemon thread that follows the run in the
set stream's summary view (``GET {base}/events?run={run_id}&view=summary``: the run's end, no stage
outputs and no streamed chunks echoed back to the runner; the run's own ``GET {base}/{run_id}/events``
only on a server without that route, a debug note), Server-Sent Events, an outbound connection
with the client's secret and signature, and sets a ``threading.Event`` within a second of the run ending
elsewhere (a cancel from the web app, the stale-run sweeper, another runner).

Like the TypeScript client's run-end watch (src/client/run-end-watch.ts): a deadline on connect
(the client's ``timeout``), a keep-alive watchdog (the server says its interval with
``: keep-alive-ms N``; three silent intervals, 45 s until it says, count as a lost connection),
reconnects with full-jitter backoff (1 s to 30 s) while polling ``GET /status`` every
``poll_interval`` seconds, and a server without the stream route (404 or
405) is polled instead (``GET /status`` every ``poll_interval`` seconds). Each degradation is
logged once with its cause and fix.

A stream the server ends with ``: closed <cause>`` (for this run, or naming none) is read by the
TypeScript subscribers' one rule (``closed_stops`` of the contract): ``deleted`` stops the watch
and calls ``on_deleted`` (the client sets :attr:`event`, stops the heartbeats and sends nothing
more); ``not-admitted`` is a refusal (one warning, ``GET /status`` polled instead); the other
causes reconnect as after any drop.
"""
import http.client
import json
import random
import socket
import threading
import time
import uuid
from typing import Any, Callable, Dict, Mapping, Optional
from urllib.parse import quote, urlsplit

from .contract import FINAL_RUN_STATUSES, closed_stops, parse_stream_closed_comment, route_path
from .errors import PipelineStatusError
from .transport import Request, Transport

#: The keep-alive interval assumed until the server announces its own, in seconds (the handlers' default).
DEFAULT_KEEP_ALIVE = 15.0
#: How many keep-alive intervals without a byte make a stream count as lost.
SILENT_KEEP_ALIVES = 3
#: The first and the longest wait between stream attempts, in seconds (full jitter, doubling).
RECONNECT_BASE = 1.0
RECONNECT_MAX = 30.0
#: Seconds between two ``GET /status`` when the server has no stream route.
DEFAULT_POLL_INTERVAL = 2.0


class _NoStreamRoute(Exception):
    """The server has no stream route (404 that is not ``run_not_found``, or 405)."""


class _Refused(Exception):
    """A refusal that retrying cannot fix (401, 403, an unknown run)."""


class RunWatch:
    """Follows one run until it is finished, :meth:`stop` is called, or the client closes.

    ``on_run`` gets every run record the stream (or a poll) shows in a final status; it returns
    whether the run ended elsewhere, and then the watch sets :attr:`event` and stops.
    """

    def __init__(self, run_id: str, transport: Transport, on_run: Callable[[Dict[str, Any]], bool],
                 log: Any, warn_once: Callable[[str, str], None], poll_interval: float = DEFAULT_POLL_INTERVAL,
                 on_deleted: Optional[Callable[[], None]] = None) -> None:
        self.run_id = run_id
        self.event = threading.Event()
        self._transport = transport
        self._on_run = on_run
        self._log = log
        self._warn_once = warn_once
        self._poll_interval = poll_interval
        self._on_deleted = on_deleted
        self._stop = threading.Event()
        self._connection: Optional[http.client.HTTPConnection] = None
        self._lock = threading.Lock()
        #: The summary view of the set stream until the server shows it has none (404, 405).
        self._summary = True
        self.thread = threading.Thread(target=self._run, name=f"pipeline-status-watch-{run_id}", daemon=True)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        """Stops following: closes the open stream at once; the thread ends soon after."""
        self._stop.set()
        with self._lock:
            connection = self._connection
        if connection is not None:
            _close_socket(connection)

    def _done(self) -> bool:
        return self._stop.is_set() or self.event.is_set()

    def _saw(self, run: Any) -> bool:
        """A run record from the stream or a poll; ``True`` once the run is finished (any way)."""
        if not isinstance(run, dict) or run.get("status") not in FINAL_RUN_STATUSES:
            return False
        if self._on_run(run):
            self.event.set()
        return True

    def _run(self) -> None:
        failures = 0
        while not self._done():
            try:
                if self._stream():
                    return
                failures = 0  # a clean drop: reconnect after the base wait
            except _NoStreamRoute as error:
                if self._summary:
                    # An older server (no set stream route) is normal: a debug note, no warning.
                    self._log.debug("Run %s: %s (a server without the set stream); following GET %s instead",
                                    self.run_id, error, self._transport.url(route_path("events", self.run_id)))
                    self._summary = False
                    continue
                self._warn_once("no-stream", f"Run {self.run_id}: live stream: {error}: the server has no live stream route; "
                                "polling GET /status every %g s instead. Fix: serve the events route (upgrade the web app's "
                                "pipeline-status-sdk; a Next.js app needs the [runId]/events route file)." % self._poll_interval)
                self._poll()
                return
            except _Refused as error:
                self._warn_once("refused", f"Run {self.run_id}: live stream refused ({error}); polling GET /status instead. "
                                "Fix: let the webhook secret read the run (an authorize hook that refuses the runner's reads).")
                self._poll()
                return
            except (OSError, http.client.HTTPException, ValueError) as error:
                if self._done():
                    return
                self._warn_once("failing", f"Run {self.run_id}: live stream: GET {self._url()} failed ({type(error).__name__}: "
                                f"{error}); retrying with backoff, polling GET /status meanwhile. Fix: let the runner hold a long GET to the web app open "
                                "(a proxy that buffers text/event-stream or cuts long requests).")
                failures += 1
                # While the stream fails, the run is polled until the next attempt.
                if self._poll(until=time.monotonic() + random.random() * min(RECONNECT_MAX, RECONNECT_BASE * 2 ** (failures - 1))):
                    return
                continue
            failures += 1
            self._stop.wait(random.random() * min(RECONNECT_MAX, RECONNECT_BASE * 2 ** (failures - 1)))

    def _route(self) -> str:
        if self._summary:
            return f"events?run={quote(self.run_id, safe='')}&view=summary"
        return route_path("events", self.run_id)

    def _url(self) -> str:
        return self._transport.url(self._route())

    def _stream(self) -> bool:
        """One stream attempt; ``True`` when the run is finished (or the watch stopped)."""
        url = urlsplit(self._url())
        request = Request("GET", self._route(), str(uuid.uuid4()))
        headers = self._transport.headers(request, accept="text/event-stream")
        timeout = self._transport.timeout
        cls = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
        connection = cls(url.hostname or "", url.port, timeout=timeout)
        with self._lock:
            self._connection = connection
        try:
            if self._done():
                return True
            path = url.path + (f"?{url.query}" if url.query else "")
            # The connect deadline: the client's timeout, over connecting, sending and the headers.
            connection.request("GET", path, headers=headers)
            response = connection.getresponse()
            if response.status in (404, 405):
                body = response.read(4096)
                code = _problem_code(body)
                if response.status == 405 or code in (None, "route_not_found"):
                    raise _NoStreamRoute(f"GET {self._url()} answered {response.status}")
                raise _Refused(f"HTTP {response.status} {code}")
            if 400 <= response.status < 500 and response.status not in (408, 429):
                raise _Refused(f"HTTP {response.status} {_problem_code(response.read(4096)) or ''}".rstrip())
            if response.status != 200 or not (response.getheader("content-type") or "").startswith("text/event-stream"):
                raise http.client.HTTPException(f"HTTP {response.status} {response.getheader('content-type')}")
            return self._read(response, connection, headers.get("Authorization"))
        finally:
            with self._lock:
                self._connection = None
            connection.close()

    def _read(self, response: http.client.HTTPResponse, connection: http.client.HTTPConnection,
              authorization: Optional[str] = None) -> bool:
        """Reads events until ``end``, a finished run, a deletion, a drop (``False``) or silence
        (raises); a ``: closed`` cause that reconnecting cannot help raises :class:`_Refused`."""
        keep_alive = DEFAULT_KEEP_ALIVE
        _set_timeout(connection, SILENT_KEEP_ALIVES * keep_alive)
        event, data = "message", []
        while not self._done():
            line = response.readline()
            if not line:
                return self._done()  # dropped: reconnect
            text = line.decode("utf-8").rstrip("\r\n")
            if text.startswith(":"):
                announced = text[1:].strip().split()
                if len(announced) == 2 and announced[0] == "keep-alive-ms" and announced[1].isdigit() and int(announced[1]) > 0:
                    keep_alive = int(announced[1]) / 1000
                    _set_timeout(connection, SILENT_KEEP_ALIVES * keep_alive)
                    continue
                closed = parse_stream_closed_comment(text[1:])
                # A comment naming another run is not about this one; the others end at the drop that follows.
                if closed is not None and closed[1] in (None, self.run_id) and closed_stops(closed[0], authorization):
                    if closed[0] == "deleted":
                        if self._on_deleted is not None:
                            self._on_deleted()
                        self._stop.set()
                        return True
                    raise _Refused(f"the server ended GET {self._url()} with ': closed {closed[0]}' (the runner's credential "
                                   "no longer covers the run as it now is) and reconnecting cannot help")
                continue
            if text == "":
                if event in ("snapshot", "update", "end") and data:
                    try:
                        run = json.loads("\n".join(data)).get("run")
                    except (ValueError, AttributeError):
                        run = None
                    if self._saw(run) or event == "end":
                        return True
                event, data = "message", []
                continue
            field, _, value = text.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if field == "event":
                event = value
            elif field == "data":
                data.append(value)
        return True

    def _poll(self, until: Optional[float] = None) -> bool:
        """The fallback: ``GET /status`` every ``poll_interval`` seconds until the run is
        finished (``True``), or until ``until`` (``time.monotonic()``) passes (``False``)."""
        while not self._done():
            try:
                answer = self._transport.send(Request("GET", route_path("status", self.run_id), str(uuid.uuid4())))
                if self._saw(answer.get("run")):
                    return True
            except PipelineStatusError as error:
                self._log.debug("Run %s: status poll failed: %s", self.run_id, error)
            wait = self._poll_interval if until is None else min(self._poll_interval, until - time.monotonic())
            if wait <= 0:
                return False
            self._stop.wait(wait)
        return True


def _problem_code(body: bytes) -> Optional[str]:
    try:
        problem = json.loads(body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError):
        return None
    code = problem.get("code") if isinstance(problem, Mapping) else None
    return code if isinstance(code, str) else None


def _set_timeout(connection: http.client.HTTPConnection, seconds: float) -> None:
    """The keep-alive watchdog: a read that waits longer raises ``socket.timeout``."""
    if connection.sock is not None:
        connection.sock.settimeout(seconds)


def _close_socket(connection: http.client.HTTPConnection) -> None:
    """Wakes a thread blocked reading the stream (``close`` alone may not)."""
    sock = connection.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
