"""``create_run`` with a pipeline, tags and metadata, ``list_runs`` across pages and
``count_runs``, ``mark_stage_retrying``'s checks and its stale answer, on the wire against a small fake server (standard library): the bodies and
queries sent, ``nextCursor`` followed with the same filters, reads authenticated and signed
like status reads, and the arguments the server would refuse named before anything is sent."""
import http.server
import json
import threading
import unittest
import urllib.parse
from datetime import datetime, timezone
from typing import Any, Dict, List

from pipeline_status_client import PrismaAPIClient

SECRET = "python-runs-secret"
RUNS = [{"id": f"run_{n}", "status": "COMPLETED", "pipeline": "report", "tags": ["x"]} for n in range(7, 0, -1)]


class FakeServer:
    """Answers ``GET /api/pipeline/runs`` from :data:`RUNS` (the cursor is an index),
    ``/runs/counts`` with one count, and ``POST /runs`` with the body's run."""

    def __init__(self) -> None:
        self.requests: List[Dict[str, Any]] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _answer(self, status: int, value: Any) -> None:
                payload = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_GET(self) -> None:
                url = urllib.parse.urlsplit(self.path)
                query = urllib.parse.parse_qs(url.query)
                server.requests.append({"method": "GET", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}})
                if url.path == "/api/pipeline/runs/counts":
                    return self._answer(200, {"counts": {"COMPLETED": len(RUNS)}})
                start = int(query.get("cursor", ["0"])[0])
                limit = int(query.get("limit", ["50"])[0])
                following = str(start + limit) if start + limit < len(RUNS) else None
                self._answer(200, {"runs": RUNS[start:start + limit], "nextCursor": following})

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length") or 0)) or b"{}")
                server.requests.append({"method": "POST", "path": self.path, "headers": {k.lower(): v for k, v in self.headers.items()}, "body": body})
                if self.path.endswith("/stage-update"):
                    # The stage already holds attempt 3: a lower attempt is answered stale, nothing stored.
                    run = {"id": "py_stale", "status": "PROCESSING", "pipeline": "default", "tags": [], "metadata": {}}
                    stage = {"stageNumber": body["stageNumber"], "status": "PROCESSING", "attempt": 3, "maxAttempts": 3}
                    return self._answer(200, {"outcome": "stale", "run": run, "stage": stage})
                run = {"id": body.get("id", "picked"), "status": "PENDING", "pipeline": body.get("pipeline", "default"),
                       "tags": body.get("tags", []), "metadata": body.get("metadata", {})}
                self._answer(201, {"created": True, "run": run, "catalogue": [{"stageNumber": 1, "stageName": "Fetch"}]})

        self.http = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.http.daemon_threads = True
        threading.Thread(target=self.http.serve_forever, daemon=True).start()
        self.origin = f"http://127.0.0.1:{self.http.server_address[1]}"

    def close(self) -> None:
        self.http.shutdown()
        self.http.server_close()


class RunsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.server = FakeServer()
        self.client = PrismaAPIClient(self.server.origin, SECRET, background=False)

    def tearDown(self) -> None:
        self.client.close()
        self.server.close()

    def test_create_run_sends_only_the_fields_given(self) -> None:
        run = self.client.create_run("py_r1", pipeline="report", tags=["nightly", "acme"], metadata={"customer": "acme"})
        self.assertEqual(run["pipeline"], "report")
        self.client.create_run("py_r2")
        self.client.create_run()
        bodies = [request["body"] for request in self.server.requests]
        self.assertEqual(bodies, [
            {"id": "py_r1", "pipeline": "report", "tags": ["nightly", "acme"], "metadata": {"customer": "acme"}},
            {"id": "py_r2"},
            {},
        ])
        # The run's catalogue is kept for the runner's check.
        self.assertEqual(self.client.check_catalogue("py_r1", 1), [{"stageNumber": 1, "stageName": "Fetch"}])

    def test_create_run_refuses_what_the_server_would_naming_the_argument(self) -> None:
        cases = [
            ({"tags": [f"t{n}" for n in range(21)]}, "tags"),
            ({"tags": ["x" * 129]}, "tags"),
            ({"metadata": {"blob": "x" * 16384}}, "metadata"),
            ({"metadata": ["not", "an", "object"]}, "metadata"),
            ({"pipeline": ""}, "pipeline"),
        ]
        for arguments, named in cases:
            with self.assertRaisesRegex(ValueError, f"^{named}"):
                self.client.create_run("py_bad", **arguments)
        self.assertEqual(self.server.requests, [])

    def test_list_runs_follows_next_cursor_with_the_same_filters(self) -> None:
        runs = list(self.client.list_runs(status=["FAILED", "COMPLETED"], pipeline="report", tag=["x", "y"],
                                          created_after=datetime(2026, 1, 1, tzinfo=timezone.utc),
                                          created_before="2026-02-01T00:00:00Z", limit=3))
        self.assertEqual([run["id"] for run in runs], [f"run_{n}" for n in range(7, 0, -1)])
        filters = ("status=FAILED&status=COMPLETED&pipeline=report&tag=x&tag=y"
                   "&createdAfter=2026-01-01T00%3A00%3A00.000Z&createdBefore=2026-02-01T00%3A00%3A00Z&limit=3")
        self.assertEqual([request["path"] for request in self.server.requests], [
            f"/api/pipeline/runs?{filters}",
            f"/api/pipeline/runs?{filters}&cursor=3",
            f"/api/pipeline/runs?{filters}&cursor=6",
        ])
        self.assertTrue(all(request["headers"].get("x-webhook-secret") == SECRET for request in self.server.requests))

    def test_list_runs_is_lazy_and_asks_for_a_page_only_when_needed(self) -> None:
        runs = self.client.list_runs(limit=2)
        self.assertEqual(self.server.requests, [])
        self.assertEqual([next(runs)["id"], next(runs)["id"]], ["run_7", "run_6"])
        self.assertEqual(len(self.server.requests), 1)
        self.assertEqual(next(runs)["id"], "run_5")
        self.assertEqual(len(self.server.requests), 2)
        self.assertEqual(len(list(self.client.list_runs())), 7)
        self.assertEqual(self.server.requests[-1]["path"], "/api/pipeline/runs")

    def test_list_runs_refuses_bad_filters_at_the_call(self) -> None:
        for arguments, named in (({"limit": 0}, "limit"), ({"limit": 201}, "limit"), ({"status": "DONE"}, "status"),
                                 ({"tag": ""}, "tag"), ({"created_after": 5}, "created_after")):
            with self.assertRaisesRegex(ValueError, f"^{named}"):
                self.client.list_runs(**arguments)
        self.assertEqual(self.server.requests, [])

    def test_list_runs_refuses_at_the_call_what_the_server_refuses_with_its_rules(self) -> None:
        cases = [
            ({"tag": "x" * 129}, "tag: each tag is a string of 1 to 128 characters (UTF-16 code units), got 129 characters"),
            # 65 emoji are 130 UTF-16 code units, as the server counts them.
            ({"tag": ["ok", "\U0001F600" * 65]}, "tag: each tag is a string of 1 to 128 characters (UTF-16 code units), got 130 characters"),
            ({"created_after": "2026-12-01"}, "created_after must be an ISO 8601 timestamp YYYY-MM-DDTHH:MM:SS[.fraction of 1 to 9 digits]"
                                              "[Z|\u00b1HH:MM] with an offset (e.g. 2026-12-01T00:00:00Z; without one it is UTC), got '2026-12-01'"),
            ({"created_before": "2026-02-30T00:00:00Z"}, "created_before must be an ISO 8601 timestamp"),
            ({"status": ["FAILED", "BOGUS"]}, "status must be one of PENDING, PROCESSING, COMPLETED, FAILED, CANCELLED, got 'BOGUS'"),
            ({"limit": 500}, "limit must be a whole number from 1 to 200 (runs per page), got 500"),
        ]
        for arguments, message in cases:
            with self.assertRaises(ValueError) as raised:
                self.client.list_runs(**arguments)
            self.assertTrue(str(raised.exception).startswith(message), str(raised.exception))
        # 64 emoji (128 code units) and instants with and without an offset are taken.
        list(self.client.list_runs(tag="\U0001F600" * 64, created_after="2026-12-01T01:00:00+01:00", created_before="2026-12-02T00:00:00"))
        self.assertEqual(len(self.server.requests), 1)

    def test_mark_stage_retrying_refuses_attempt_1_and_logs_a_stale_attempt_once(self) -> None:
        for attempt, message in ((1, "attempt must be a whole number of 2 or more"), (4, "attempt must be at most max_attempts (3), got 4")):
            with self.assertRaises(ValueError) as raised:
                self.client.mark_stage_retrying("py_stale", 1, None, attempt, 3, "boom", 0)
            self.assertTrue(str(raised.exception).startswith(message), str(raised.exception))
        self.assertEqual(self.server.requests, [])
        with self.assertLogs("pipeline_status_client", "DEBUG") as logs:
            self.assertTrue(self.client.mark_stage_retrying("py_stale", 1, None, 2, 3, "boom", 0))
        self.assertEqual(logs.output, ["INFO:pipeline_status_client:Run py_stale: stage 1 PROCESSING attempt 2 not stored: "
                                       "the server kept a higher attempt (3) (outcome stale)"])

    def test_count_runs(self) -> None:
        self.assertEqual(self.client.count_runs("status", tag="x"), {"COMPLETED": 7})
        self.assertEqual(self.server.requests[0]["path"], "/api/pipeline/runs/counts?tag=x&groupBy=status")
        with self.assertRaisesRegex(ValueError, "^group_by"):
            self.client.count_runs("tag")

    def test_signed_list_reads_name_the_path_without_the_query(self) -> None:
        signed = PrismaAPIClient(self.server.origin, "", signing_secret="whsec_c2lnbmluZy1zZWNyZXQtZm9yLWxpc3Rz", background=False)
        list(signed.list_runs(tag="x"))
        signed.count_runs("pipeline")
        ids = [request["headers"].get("webhook-id", "").split(" ")[:2] for request in self.server.requests]
        self.assertEqual(ids, [["GET", "runs"], ["GET", "runs/counts"]])
        signed.close()


if __name__ == "__main__":
    unittest.main()
