"""``client.stream_output(run_id, stage)`` against a small in-process fake server: chunks
``{"seq", "text"}`` to ``{base}/{run}/stages/{n}/output``, batched (fewer requests than writes),
cut at 64 KiB of UTF-8 between characters, sent before the stage's final status, stopped after a
409 with one warning, bounded, and queued in the outbox in order with the stage's updates.
The same against the real handlers: test/client/stage-output-stream.test.ts (TypeScript)."""
import http.server
import json
import logging
import re
import tempfile
import threading
import time
import unittest
from typing import Any, Callable, Dict, List, Optional, Tuple

from pipeline_status_client import InvalidRunIdError, MAX_OUTPUT_CHUNK_BYTES, PrismaAPIClient, RetryPolicy, RunFinishedElsewhereError

RUN = {"id": "r", "status": "PROCESSING", "error": None}
Answer = Callable[[str, Dict[str, Any]], Optional[Tuple[int, Dict[str, Any]]]]


class FakeServer:
    """Answers every POST ``applied``, recording ``(path, body)``; ``answer`` may answer first."""

    def __init__(self) -> None:
        self.requests: List[Tuple[str, Dict[str, Any]]] = []
        self.answer: Optional[Answer] = None
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                server.requests.append((self.path, body))
                answered = server.answer(self.path, body) if server.answer else None
                status, payload = answered or (200, {"outcome": "applied", "run": RUN})
                data = json.dumps(payload).encode("utf-8")
                self.send_response(status)
                self.send_header("Content-Type", "application/problem+json" if status >= 400 else "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                # GET /status: the run with no stage stored (the restart rule's one read).
                data = json.dumps({"run": RUN, "stages": []}).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def lines(self, start: int = 0) -> List[str]:
        """The requests from ``start`` as ``output 2 #0 "text"``, ``stage-update 2 COMPLETED``."""
        out = []
        for path, body in self.requests[start:]:
            chunk = re.search(r"/stages/(\d+)/output$", path)
            if chunk:
                out.append(f"output {chunk.group(1)} #{body['seq']} {json.dumps(body['text'], ensure_ascii=False)}")
            elif path.endswith("/stage-update"):
                out.append(f"stage-update {body['stageNumber']} {body['status']}")
        return out

    def chunks(self) -> List[Dict[str, Any]]:
        return [body for path, body in self.requests if path.endswith("/output")]


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: List[Tuple[str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append((record.levelname, record.getMessage()))


def problem(code: str, status: int, **extra: Any) -> Tuple[int, Dict[str, Any]]:
    return status, {"type": f"https://pipeline-status.dev/problems/{code}", "title": code, "status": status, "code": code, **extra}


class StreamOutputTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = FakeServer()
        self.records = Records()
        self.logger = logging.getLogger(f"stream-output-test-{id(self)}")
        self.logger.propagate = False
        self.logger.addHandler(self.records)
        self.logger.setLevel(logging.DEBUG)

    def tearDown(self) -> None:
        self.server.stop()

    def client(self, **options: Any) -> PrismaAPIClient:
        client = PrismaAPIClient(self.server.origin, "secret", logger=self.logger, retry=RetryPolicy(attempts=1), **options)
        self.addCleanup(client.close)
        return client

    def test_batches_writes_and_sends_them_before_the_final_status(self) -> None:
        client = self.client()
        tokens = [f"token{i} " for i in range(60)]
        client.mark_stage_processing("r", 2)
        with client.stream_output("r", 2, flush_interval=0.05) as out:
            for i, token in enumerate(tokens):
                out.write(token)
                if i % 20 == 19:
                    time.sleep(0.1)
        client.mark_stage_complete("r", 2, "".join(tokens))
        lines = self.server.lines()
        chunks = self.server.chunks()
        self.assertEqual(lines[0], "stage-update 2 PROCESSING")
        self.assertEqual(lines[-1], "stage-update 2 COMPLETED")
        self.assertEqual([c["seq"] for c in chunks], list(range(len(chunks))))
        self.assertEqual("".join(c["text"] for c in chunks), "".join(tokens))
        self.assertLess(len(chunks), len(tokens))
        self.assertTrue(all(p.startswith("/api/pipeline/r/stages/2/output") for p, _ in self.server.requests[1:-1]))
        self.assertEqual(out.stopped, None)

    def test_refuses_a_run_id_outside_the_contracts_rule_when_opened_naming_it(self) -> None:
        client = self.client()
        # The mark_* methods' rule: they return False and log "outside the contract's rule".
        self.assertFalse(client.mark_stage_processing("bad id/1", 2))
        for run_id in ["bad id/1", "", "..", "x" * 129, None]:
            with self.subTest(run_id=run_id):
                with self.assertRaises(InvalidRunIdError) as raised:
                    client.stream_output(run_id, 2)  # type: ignore[arg-type]
                self.assertEqual(
                    str(raised.exception),
                    f"invalid run id {run_id!r}: outside the contract's rule (1-128 characters of A-Z a-z 0-9 . _ ~ : -, "
                    "not dots only); no output stream opened")
                self.assertIsInstance(raised.exception, ValueError)
        # Nothing sent, nothing logged past the mark_* line: the caller gets the cause at once.
        self.assertEqual(self.server.requests, [])
        self.assertEqual([level for level, _ in self.records.messages], ["ERROR"])
        self.assertIn("outside the contract's rule", self.records.messages[0][1])

    def test_cuts_chunks_at_64_kib_between_characters_and_joins_split_surrogates(self) -> None:
        client = self.client()
        text = "a" + "\U0001F600" * 40000 + "\u00e9" * 10
        out = client.stream_output("r", 1, flush_interval=60)
        out.write(text)
        out.write("x\ud83d")
        out.write("\ude00y\x00")
        self.assertTrue(out.close())
        chunks = self.server.chunks()
        self.assertGreater(len(chunks), 2)
        for chunk in chunks:
            self.assertLessEqual(len(chunk["text"].encode("utf-8")), MAX_OUTPUT_CHUNK_BYTES)
        self.assertEqual("".join(c["text"] for c in chunks), text + "x\U0001F600y\ufffd")

    def test_stops_after_a_409_with_one_warning(self) -> None:
        self.server.answer = lambda path, body: (
            problem("output_out_of_order", 409, detail="expected seq 0", expectedSeq=0) if path.endswith("/output") and body["seq"] == 1 else None)
        client = self.client()
        out = client.stream_output("r", 3, flush_interval=0)
        for i in range(3):
            out.write(f"piece {i} ")
            deadline = time.monotonic() + 10
            while len(self.server.chunks()) <= i and out.stopped is None and time.monotonic() < deadline:
                time.sleep(0.01)
        for i in range(20):
            out.write(f"more {i}")
        self.assertFalse(out.close())
        self.assertEqual([c["text"] for c in self.server.chunks()], ["piece 0 ", "piece 1 "])
        self.assertRegex(out.stopped or "", r"chunk 1 was refused: .*409.*output_out_of_order")
        warnings = [m for level, m in self.records.messages if "output" in m and level in ("WARNING", "ERROR")]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertRegex(warnings[0], r"^Run r: stage 3: streamed output stopped: chunk 1 was refused")
        self.assertEqual(out.chunks, 1)

    def test_a_stopped_stream_logs_exactly_one_line_naming_the_cause_and_the_fix(self) -> None:
        # A chunk lost without an outbox: the delivery does not log it too (it did: two lines).
        self.server.answer = lambda path, body: problem("database_unavailable", 503) if path.endswith("/output") else None
        client = self.client()
        self.assertTrue(client.mark_stage_processing("r", 2))
        out = client.stream_output("r", 2, flush_interval=0)
        out.write("lost")
        deadline = time.monotonic() + 10
        while out.stopped is None and time.monotonic() < deadline:
            time.sleep(0.01)
        out.write("dropped after the stop")
        self.assertFalse(out.close())
        lines = [f"{level} {m}" for level, m in self.records.messages if level in ("WARNING", "ERROR")]
        self.assertEqual(lines, [
            "WARNING Run r: stage 2: streamed output stopped: chunk 0 was not delivered: POST /api/pipeline/r/stages/2/output "
            "answered 503 database_unavailable: database_unavailable. Later write() calls are dropped; the stage's final status and "
            "output are still sent. Fix: give the client an outbox (outbox_dir) so that chunks wait on disk while the server cannot "
            "take them, or check that the server is reachable from the runner",
        ])
        # A 413: the fix names the server's limit.
        self.records.messages.clear()
        self.server.answer = lambda path, body: problem("output_too_large", 413, maxBytes=8) if path.endswith("/output") else None
        out = client.stream_output("r", 3, flush_interval=0)
        out.write("0123456789")
        self.assertFalse(out.close())
        lines = [f"{level} {m}" for level, m in self.records.messages if level in ("WARNING", "ERROR")]
        self.assertEqual(lines, [
            f"WARNING Run r: stage 3: streamed output stopped: {out.stopped}. Later write() calls are dropped; the stage's final "
            "status and output are still sent. Fix: stream less text per stage attempt, or raise the server's "
            "maxStreamedOutputBytes (its limit of one stage attempt's streamed text)",
        ])
        self.assertRegex(out.stopped or "", r"^chunk 0 was refused: .*413")

    def test_a_run_cancelled_elsewhere_stops_the_stream_with_its_cause_and_no_fix(self) -> None:
        # The newcomer trial's repro: a stage streams inside run_stage_with_retries and the web app
        # cancels the run (POST /cancel) between two chunks. The stream said "chunk 1 was not
        # delivered: unknown reason ... Fix: give the client an outbox": now the TypeScript wording.
        first_chunk = threading.Event()
        cancelled_run = {"id": "r", "status": "CANCELLED", "error": "stopped by a user"}

        def answer(path: str, body: Dict[str, Any]) -> Optional[Tuple[int, Dict[str, Any]]]:
            if not path.endswith("/output"):
                return None
            if body["seq"] == 0:
                first_chunk.set()
                return None
            return problem("run_finished", 409, detail="Run r is CANCELLED and takes no more output", run=cancelled_run)

        self.server.answer = answer
        client = self.client()
        streams: List[Any] = []

        def stage() -> str:
            with client.stream_output("r", 2, flush_interval=0) as out:
                streams.append(out)
                out.write("before the cancel ")
                self.assertTrue(first_chunk.wait(10))
                out.write("after the cancel")  # chunk 1: refused, the run is CANCELLED
            return "report"

        with self.assertRaises(RunFinishedElsewhereError):
            client.run_stage_with_retries("r", 2, stage, attempts=1)
        out = streams[0]
        expected = "Run r is already CANCELLED (stopped by a user); the update was not stored"
        self.assertEqual(out.stopped, expected)
        self.assertFalse(out.close())
        messages = [m for _, m in self.records.messages]
        # The run's end once, the refused chunk once; the stream adds no line of its own (no
        # "unknown reason", no fix: the run was cancelled, there is nothing to fix).
        self.assertEqual(len([m for m in messages if m.startswith('Run r was CANCELLED (error: "stopped by a user")')]), 1, messages)
        self.assertEqual([m for m in messages if "output" in m], ["Run r: stage 2 output chunk 1 refused: the run was finished elsewhere"])
        # A stream opened after the client learned it: its first chunk is not sent, for the same cause.
        self.records.messages.clear()
        sent = len(self.server.requests)
        later = client.stream_output("r", 3, flush_interval=0)
        later.write("late")
        self.assertFalse(later.close())
        self.assertEqual(later.stopped, expected)
        self.assertEqual(len(self.server.requests), sent)
        self.assertEqual([f"{level} {m}" for level, m in self.records.messages], [
            "WARNING Run r: stage 3 output chunk 0 not sent: the run was finished elsewhere (CANCELLED: stopped by a user)",
        ])

    def test_parallel_stages_the_last_completed_first_names_that_cause_not_a_bug(self) -> None:
        completed = {"id": "r", "status": "COMPLETED", "error": None}

        def answer(path: str, body: Dict[str, Any]) -> Optional[Tuple[int, Dict[str, Any]]]:
            if path.endswith("/output"):
                return problem("run_finished", 409, detail="Run r is COMPLETED and takes no more output")
            if body.get("stageNumber") == 5:
                return 200, {"outcome": "applied", "run": completed}
            return None

        self.server.answer = answer
        client = self.client()
        self.assertTrue(client.mark_stage_processing("r", 3))
        # Stage 5, the catalogue's last, completes while stage 3 still runs: it completes the run.
        self.assertTrue(client.mark_stage_complete("r", 5, "report"))
        out = client.stream_output("r", 3, flush_interval=0)
        out.write("too late")
        self.assertFalse(out.close())
        self.assertRegex(out.stopped or "", r"^chunk 0 was refused: .*409 run_finished")
        self.assertEqual([f"{level} {m}" for level, m in self.records.messages if level in ("WARNING", "ERROR")], [
            f"WARNING Run r: stage 3: streamed output stopped: {out.stopped}. Later write() calls are dropped; the stage's final "
            "status and output are still sent. Fix: the run was already finished by this runner's own report (the catalogue's "
            "last stage COMPLETED, or a stage FAILED or CANCELLED): a runner with parallel stages must report the last stage "
            "COMPLETED only after every other stage finished (after a FAILED or CANCELLED stage there is nothing to fix)",
        ])

    def test_bounds_what_waits(self) -> None:
        gate = threading.Event()
        self.server.answer = lambda path, body: (gate.wait(10) and None)
        client = self.client()
        out = client.stream_output("r", 1, flush_interval=0, max_buffered_bytes=100)
        out.write("first")
        deadline = time.monotonic() + 10
        while not self.server.chunks() and time.monotonic() < deadline:
            time.sleep(0.01)
        for _ in range(10):  # fills the 100-byte bound exactly
            out.write("0123456789")
        self.assertIsNone(out.truncated)
        out.write("over")
        self.assertRegex(out.truncated or "", r"more than 100 bytes waited")
        self.assertIsNone(out.stopped)
        gate.set()
        out.write("later")  # dropped too: the text would have a hole
        self.assertFalse(out.close())
        chunks = self.server.chunks()
        self.assertEqual("".join(c["text"] for c in chunks), "first" + "0123456789" * 10)
        self.assertEqual([c["seq"] for c in chunks], list(range(len(chunks))))
        self.assertEqual(out.bytes, 105)
        warnings = [m for level, m in self.records.messages if "output" in m and level in ("WARNING", "ERROR")]
        self.assertEqual(len(warnings), 1, warnings)
        self.assertRegex(warnings[0], r"^Run r: stage 1: streamed output truncated: .*the text written before is still sent")

    def test_one_write_larger_than_the_bound_is_named_as_such_not_as_a_slow_server(self) -> None:
        client = self.client()
        out = client.stream_output("r", 4, flush_interval=60)
        out.write("# Report\n")
        out.write("x" * 1_200_000)  # the newcomer trial's 1.2 MB write; the default bound is 1 MiB
        reason = ("one write of 1200000 bytes is larger than max_buffered_bytes (1048576 bytes), the most text that may "
                  "wait to be sent")
        self.assertEqual(out.truncated, reason)
        self.assertFalse(out.close())
        self.assertEqual([c["text"] for c in self.server.chunks()], ["# Report\n"])
        self.assertEqual([f"{level} {m}" for level, m in self.records.messages if level in ("WARNING", "ERROR")], [
            f"WARNING Run r: stage 4: streamed output truncated: {reason}. This write and later ones are dropped; the text "
            "written before is still sent, then the stage's final status. Fix: write the text in pieces as it is produced, "
            "or raise max_buffered_bytes (the server keeps at most its maxStreamedOutputBytes of a stage attempt's streamed "
            "text, 1 MiB by default)",
        ])

    def test_chunks_wait_in_the_outbox_in_order_with_the_stage_updates(self) -> None:
        down = {"value": True}
        self.server.answer = lambda path, body: problem("database_unavailable", 503) if down["value"] and path.endswith("/output") else None
        client = self.client(outbox_dir=tempfile.mkdtemp(prefix="stream-output-"), background=False)
        with client.stream_output("r", 1, flush_interval=60) as out:
            out.write("queued ")
            out.write("text")
        self.assertTrue(client.mark_stage_complete("r", 1, "done"))
        self.assertGreater(client.pending_count("r"), 0)
        down["value"] = False
        sent = len(self.server.requests)
        self.assertTrue(client.flush(timeout=30))
        self.assertEqual(self.server.lines(sent), ['output 1 #0 "queued text"', "stage-update 1 COMPLETED"])


if __name__ == "__main__":
    unittest.main()
