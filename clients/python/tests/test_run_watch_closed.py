"""The run watch reads the server's ``: closed <cause> [<runId>]`` comment by the TypeScript
subscribers' rule (``closed_stops``, tests/stream_closed.json): ``deleted`` stops the watch and
the run (as ``runPipeline``'s ``RunDeletedError``), ``not-admitted`` is a refusal, the other
causes reconnect. Against an in-process server whose set stream ends with a chosen comment."""
import http.server
import json
import logging
import threading
import time
import unittest
from typing import Any, Dict, List

from pipeline_status_client import PrismaAPIClient, RetryPolicy, RunDeletedError

from .test_stream_output import Records

RUN = {"id": "r", "status": "PROCESSING", "error": None}


class SseServer:
    """Answers ``GET /events`` with a snapshot of a running run then ``comment`` and the end of
    the stream (``comment`` taken from ``comments``, the last repeated); ``GET /status`` the run
    running; every POST ``applied``."""

    def __init__(self, comments: List[str]) -> None:
        self.streams = 0
        self.posts: List[str] = []
        self.polls = 0
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if "/events" in self.path:
                    comment = comments[min(server.streams, len(comments) - 1)]
                    server.streams += 1
                    self.send_response(200)
                    self.send_header("Content-Type", "text/event-stream")
                    self.end_headers()
                    snapshot = json.dumps({"run": RUN, "stages": []})
                    self.wfile.write(f"event: snapshot\ndata: {snapshot}\n\n: {comment}\n\n".encode("utf-8"))
                    return
                server.polls += 1
                self.answer({"run": RUN, "stages": []})

            def do_POST(self) -> None:  # noqa: N802 (http.server's name)
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                server.posts.append(self.path)
                self.answer({"outcome": "applied", "run": RUN})

            def answer(self, payload: Dict[str, Any]) -> None:
                data = json.dumps(payload).encode("utf-8")
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.origin = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class RunWatchClosedTest(unittest.TestCase):
    def start(self, *comments: str, **options: Any) -> PrismaAPIClient:
        self.server = SseServer(list(comments))
        self.addCleanup(self.server.stop)
        self.records = Records()
        logger = logging.getLogger(f"run-watch-closed-{id(self)}")
        logger.propagate = False
        logger.addHandler(self.records)
        logger.setLevel(logging.DEBUG)
        client = PrismaAPIClient(self.server.origin, "secret", logger=logger, retry=RetryPolicy(attempts=1), **options)
        self.addCleanup(client.close)
        return client

    def warnings(self) -> List[str]:
        return [message for level, message in self.records.messages if level == "WARNING"]

    def wait_for(self, condition: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.02)

    def test_a_deleted_run_stops_the_watch_and_the_stage_and_nothing_more_is_sent(self) -> None:
        client = self.start("closed deleted r")
        self.assertTrue(client.mark_stage_processing("r", 1))
        posts = len(self.server.posts)  # the PROCESSING
        cancelled = client.cancelled("r")
        self.assertTrue(cancelled.wait(10))
        self.assertTrue(client.run_deleted("r"))
        self.assertIsNone(client.run_finished("r"))  # no run is left to report
        client._watches["r"].thread.join(10)  # the watch ended: no reconnect
        self.assertFalse(client._watches["r"].thread.is_alive())
        self.assertEqual(self.server.streams, 1)
        with self.assertRaises(RunDeletedError) as raised:
            client.run_stage_with_retries("r", 2, lambda: "never run")
        self.assertTrue(raised.exception.deleted)
        self.assertIsNone(raised.exception.run)
        self.assertFalse(client.mark_stage_complete("r", 1, {"late": True}))
        self.assertFalse(client.report_progress("r", 1, current=1, total=2))
        self.assertEqual(len(self.server.posts), posts)  # nothing sent after the deletion
        self.assertIs(client.cancelled("r"), cancelled)
        warnings = self.warnings()
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("was deleted on the server while it ran", warnings[0])
        self.assertIn(": closed deleted r", warnings[0])

    def test_a_comment_naming_another_run_is_a_drop(self) -> None:
        client = self.start("closed deleted other", "closed deleted r")
        self.assertTrue(client.cancelled("r").wait(20))
        self.assertEqual(self.server.streams, 2)

    def test_not_admitted_is_a_refusal_polled_instead(self) -> None:
        client = self.start("closed not-admitted r")
        client.poll_interval = 0.05
        cancelled = client.cancelled("r")
        self.wait_for(lambda: self.server.polls >= 1)
        self.assertEqual(self.server.streams, 1)
        self.assertFalse(cancelled.is_set())
        self.assertFalse(client.run_deleted("r"))
        warnings = self.warnings()
        self.assertEqual(len(warnings), 1, warnings)
        self.assertIn("': closed not-admitted'", warnings[0])

    def test_the_other_causes_reconnect(self) -> None:
        # The webhook secret is no read token: an expired credential is asked again.
        client = self.start("closed update-unavailable r", "closed credential-expired", "closed membership-failed", "closed deleted r")
        self.assertTrue(client.cancelled("r").wait(20))
        self.assertEqual(self.server.streams, 4)
        self.assertTrue(client.run_deleted("r"))


if __name__ == "__main__":
    unittest.main()
