"""The transport's ``timeout`` is one deadline per attempt across connect, headers and body:
urllib's own is per socket operation, so a body trickled one byte every 1.5 s used to beat
``timeout=2.0`` for as long as the body lasted. A small fault server in a thread; real clock,
ceilings of 5x the timeout."""
import http.server
import json
import threading
import time
import unittest

from pipeline_status_client import PrismaAPIClient, RetryPolicy, StatusNetworkError
from pipeline_status_client.transport import Request, Transport

BODY = json.dumps({"run": {"id": "run_1", "status": "PROCESSING"}, "stages": [], "pad": "x" * 40}).encode()


class FaultServer:
    """Answers every request with 200 and :data:`BODY`: its headers at once, then the body
    ``mode``: ``stall`` (never), ``trickle`` (a byte every ``gap`` seconds) or ``whole``."""

    def __init__(self, mode: str, gap: float = 0.0):
        self.keys = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                server.keys.append(self.headers.get("Idempotency-Key"))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(BODY)))
                self.end_headers()
                self.wfile.flush()
                try:
                    if mode == "whole":
                        self.wfile.write(BODY)
                    elif mode == "trickle":
                        for byte in BODY:
                            time.sleep(gap)
                            self.wfile.write(bytes([byte]))
                            self.wfile.flush()
                    else:
                        time.sleep(30)
                except OSError:
                    pass  # the client gave up and closed

            do_GET = do_POST = _answer

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


class DeadlineTest(unittest.TestCase):
    def attempt(self, server: FaultServer, timeout: float) -> "tuple[float, object]":
        transport = Transport(server.origin, "/api/pipeline", "secret", None, timeout)
        started = time.monotonic()
        try:
            result: object = transport.send(Request("GET", "run_1/status", "u1"))
        except StatusNetworkError as error:
            result = error
        return time.monotonic() - started, result

    def test_a_body_trickled_a_byte_every_one_and_a_half_seconds_ends_at_the_timeout(self) -> None:
        server = FaultServer("trickle", gap=1.5)
        self.addCleanup(server.close)
        took, error = self.attempt(server, 2.0)
        self.assertIsInstance(error, StatusNetworkError)
        assert isinstance(error, StatusNetworkError)
        self.assertTrue(error.timed_out)
        self.assertEqual(error.reason, "timed out after 2 s")
        self.assertGreaterEqual(took, 2.0 - 0.01)
        self.assertLess(took, 5 * 2.0)

    def test_a_stall_after_the_headers_ends_at_the_timeout(self) -> None:
        server = FaultServer("stall")
        self.addCleanup(server.close)
        took, error = self.attempt(server, 0.5)
        self.assertTrue(isinstance(error, StatusNetworkError) and error.timed_out)
        self.assertGreaterEqual(took, 0.5 - 0.01)
        self.assertLess(took, 5 * 0.5)

    def test_a_whole_answer_within_the_deadline_is_read(self) -> None:
        server = FaultServer("whole")
        self.addCleanup(server.close)
        _, answer = self.attempt(server, 2.0)
        self.assertEqual(answer, json.loads(BODY))

    def test_each_attempt_of_an_update_times_out_and_the_retries_keep_its_idempotency_key(self) -> None:
        server = FaultServer("stall")
        self.addCleanup(server.close)
        client = PrismaAPIClient(server.origin, secret="secret", timeout=0.3, background=False,
                                 retry=RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.01))
        self.addCleanup(client.close)
        with self.assertLogs("pipeline_status_client", level="WARNING") as logs:
            started = time.monotonic()
            # A final status: PROCESSING would first read the run once (the restart rule), a fourth request.
            self.assertFalse(client.mark_stage_complete("run_1", 1, "done"))
            took = time.monotonic() - started
        self.assertEqual(len(server.keys), 3)
        self.assertEqual(len(set(server.keys)), 1)
        self.assertIsNotNone(server.keys[0])
        retries = [line for line in logs.output if "retry" in line]
        self.assertEqual(len(retries), 2)
        for line in retries:
            self.assertIn("failed (timed out after 0.3 s)", line)
        self.assertGreaterEqual(took, 3 * 0.3 - 0.03)
        self.assertLess(took, 5 * 3 * 0.3)


class MessagesTest(unittest.TestCase):
    def test_a_url_without_a_scheme_is_refused_with_the_likely_fix(self) -> None:
        from pipeline_status_client import ConfigurationError
        with self.assertRaisesRegex(ConfigurationError, r"^FRONTEND_WEBHOOK_URL must be an http\(s\) URL, got 'localhost:5120'; did you mean http://localhost:5120\?$"):
            PrismaAPIClient("localhost:5120", secret="s", background=False)
        with self.assertRaisesRegex(ConfigurationError, r"did you mean https://app\.example\.com/hooks\?$"):
            PrismaAPIClient("app.example.com/hooks", secret="s", background=False)


if __name__ == "__main__":
    unittest.main()
