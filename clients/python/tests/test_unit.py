"""Unit tests of the parts that need no server: signing (the known-answer vectors of
docs/security.md), storable output, truncation, the retry rule, the outbox's order."""
import json
from pathlib import Path
import socket
import tempfile
import time
import unittest

from pipeline_status_client import (
    TRUNCATION_MARKER,
    ConfigurationError,
    PrismaAPIClient,
    RetryPolicy,
    StatusNetworkError,
    decode_signing_secret,
    fit_stage_update,
    is_valid_run_id,
    sign_webhook,
    signature_headers,
    to_storable_text,
    webhook_message_id,
)
from pipeline_status_client.contract import STREAM_CLOSED_CAUSES, closed_stops, encode_json, parse_stream_closed_comment, is_complete_run_response, json_safe, progress_problem, timestamp_problem
from pipeline_status_client.outbox import Outbox
from pipeline_status_client.recent import RECENT_RUNS, RecentRuns
from pipeline_status_client.retry import describe_retry, parse_retry_after

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class SigningTest(unittest.TestCase):
    def test_known_answer_stage_update(self) -> None:
        body = '{"stageNumber":1,"stageName":"Input Processing","status":"COMPLETED","output":"café"}'.encode("utf-8")
        message_id = webhook_message_id("POST", "run_1/stage-update", "5f0e8a43-8c1d-4b6a-9d2e-7a1c3b9e4f20")
        self.assertEqual(message_id, "POST run_1/stage-update 5f0e8a43-8c1d-4b6a-9d2e-7a1c3b9e4f20")
        signature = sign_webhook(decode_signing_secret(SECRET), message_id, 1761400991, body)
        self.assertEqual(signature, "v1,osrKrL8goNVTONY+V4qcSr7u0wkrXskYy3BaByktCrk=")

    def test_known_answer_status_read(self) -> None:
        message_id = webhook_message_id("get", "run_1/status", "0b9d6c1e-3f2a-4e5b-8c7d-6a5f4e3d2c1b")
        headers = signature_headers(decode_signing_secret(SECRET), message_id, b"", timestamp=1761400991)
        self.assertEqual(headers, {
            "webhook-id": "GET run_1/status 0b9d6c1e-3f2a-4e5b-8c7d-6a5f4e3d2c1b",
            "webhook-timestamp": "1761400991",
            "webhook-signature": "v1,WrV8ytNC7/pL1S6s/9qJZkk3xk/6Mliwl23wM7fGtlI=",
        })

    def test_secrets(self) -> None:
        self.assertEqual(decode_signing_secret("plain"), b"plain")
        with self.assertRaises(ValueError):
            decode_signing_secret("whsec_not base64!")
        with self.assertRaises(ValueError):
            webhook_message_id("POST", "runs", "")


class StorableOutputTest(unittest.TestCase):
    def test_nul_and_lone_surrogates_become_replacement_characters(self) -> None:
        self.assertEqual(to_storable_text("a\x00b\ud800c\udfffd"), ("a\ufffdb\ufffdc\ufffdd", 3))
        # A surrogate pair written as two code points is the character JavaScript reads.
        self.assertEqual(to_storable_text("x\ud83d\ude00\x00"), ("x\U0001F600\ufffd", 1))
        self.assertEqual(to_storable_text("café ✓"), ("café ✓", 0))

    def test_truncation_fits_the_limit_and_ends_with_one_marker(self) -> None:
        self.assertEqual(TRUNCATION_MARKER, "\n\u2026[truncated by pipeline-status-sdk]")
        body = {"stageNumber": 2, "stageName": "Signal Amplification", "status": "COMPLETED", "output": "é" * 5000}
        fitted = fit_stage_update(body, 1000)
        assert fitted is not None
        cut, before, after = fitted
        self.assertLessEqual(len(encode_json(cut)), 1000)
        self.assertGreater(len(encode_json(cut)), 990)  # the largest prefix, not just any
        self.assertTrue(cut["output"].endswith(TRUNCATION_MARKER))
        self.assertEqual(cut["output"].count(TRUNCATION_MARKER), 1)
        self.assertEqual((before, after), (10000, len(cut["output"].encode("utf-8"))))
        again = fit_stage_update(cut, 500)
        assert again is not None
        self.assertEqual(again[0]["output"].count(TRUNCATION_MARKER), 1)
        self.assertIsNone(fit_stage_update(body, 20))
        self.assertIsNone(fit_stage_update({**body, "output": None}, 1000))

    def test_run_ids(self) -> None:
        for good in ["run_1", "a.b:c~d-e", "x" * 128]:
            self.assertTrue(is_valid_run_id(good), good)
        for bad in ["", ".", "..", "a/b", "x" * 129, "é", None]:
            self.assertFalse(is_valid_run_id(bad), bad)


class TimestampTest(unittest.TestCase):
    def test_the_servers_timestamp_rule_case_for_case(self) -> None:
        # The table the TypeScript contract is tested against too (src/contract/contract.test.ts).
        with open(Path(__file__).with_name("timestamps.json"), encoding="utf-8") as file:
            cases = json.load(file)["cases"]
        for case in cases:
            problem = timestamp_problem(case["value"])
            reason = None if problem is None else "range" if "years 0001 to 9999" in problem else "grammar"
            self.assertEqual(reason, case["reason"], case["value"])


class StreamClosedTest(unittest.TestCase):
    """The ``: closed`` comments and which causes stop, as src/contract/live-status.ts (the same table)."""

    def test_the_shared_table(self) -> None:
        with open(Path(__file__).with_name("stream_closed.json"), encoding="utf-8") as file:
            table = json.load(file)
        self.assertEqual(sorted(STREAM_CLOSED_CAUSES), sorted(table["causes"]))
        for case in table["comments"]:
            parsed = parse_stream_closed_comment(case["comment"])
            self.assertEqual(parsed if parsed is not None else (None, None), (case["cause"], case["runId"]), case["comment"])
        for case in table["stops"]:
            self.assertEqual(closed_stops(case["cause"], case["authorization"]), case["stops"], case)


class CompleteRunResponseTest(unittest.TestCase):
    """The shape of a /complete answer, as the contract's CompleteRunResponse (src/contract/records.ts)."""

    RUN = {"id": "run_1", "status": "COMPLETED", "error": None, "completedAt": "2026-01-01T00:00:00.000Z",
           "completionReceivedAt": "2026-01-01T00:00:00.000Z", "createdAt": "2026-01-01T00:00:00.000Z",
           "updatedAt": "2026-01-01T00:00:00.000Z", "lastActivityAt": None, "heartbeatIntervalMs": None}

    def test_reads_the_contract_shape(self) -> None:
        # The members a server older than them leaves out have defaults; others are ignored.
        self.assertTrue(is_complete_run_response({"outcome": "applied", "run": self.RUN}))
        self.assertTrue(is_complete_run_response({"outcome": "duplicate", "extra": 1, "run": {
            **self.RUN, "heartbeatIntervalMs": 5000.0, "pipeline": "default", "tags": ["a"], "metadata": {}, "startedAt": None, "x": 1}}))

    def test_refuses_anything_else(self) -> None:
        for answer in ({}, [], None, {"ok": True}, {"outcome": "applied"}, {"outcome": "done", "run": self.RUN},
                       {"outcome": "applied", "run": {**self.RUN, "status": "DONE"}},
                       {"outcome": "applied", "run": {k: v for k, v in self.RUN.items() if k != "createdAt"}},
                       {"outcome": "applied", "run": {**self.RUN, "heartbeatIntervalMs": True}},
                       {"outcome": "applied", "run": {**self.RUN, "heartbeatIntervalMs": 1.5}},
                       {"outcome": "applied", "run": {**self.RUN, "tags": [1]}},
                       {"outcome": "applied", "run": {**self.RUN, "metadata": []}},
                       {"outcome": "applied", "run": {**self.RUN, "pipeline": None}}):
            with self.subTest(answer=answer):
                self.assertFalse(is_complete_run_response(answer))


class RecentRunsTest(unittest.TestCase):
    def test_keeps_the_most_recently_set_runs_only(self) -> None:
        recent = RecentRuns(limit=3)
        for run_id in ("a", "b", "c"):
            recent.add(run_id)
        recent["a"] = True  # set again: the most recent now
        recent.add("d")
        self.assertEqual(list(recent), ["c", "a", "d"])
        self.assertNotIn("b", recent)
        with self.assertRaises(ValueError):
            RecentRuns(limit=0)

    def test_a_long_lived_client_remembers_the_last_1000_runs_learned_finished(self) -> None:
        # One process running many runs: what it learned of each run is bounded (TypeScript's RECENT_RUNS).
        client = PrismaAPIClient("http://127.0.0.1:9", "secret", background=False)
        self.addCleanup(client.close)
        for n in range(RECENT_RUNS + 1):
            run = {"id": f"r{n}", "status": "CANCELLED", "error": "stopped"}
            client._observe_run(f"r{n}", {"run": run}, False, read=True)
        self.assertIsNone(client.run_finished("r0"))
        self.assertEqual(client.run_finished(f"r{RECENT_RUNS}")["status"], "CANCELLED")
        self.assertEqual(len(client._runs), RECENT_RUNS)
        self.assertEqual(len(client._finished), RECENT_RUNS)


class RetryTest(unittest.TestCase):
    def test_backoff_with_full_jitter_is_capped(self) -> None:
        policy = RetryPolicy(base_delay=1.0, max_delay=3.0)
        for retry in range(1, 8):
            delay = policy.delay(retry)
            self.assertGreaterEqual(delay, 0)
            self.assertLessEqual(delay, min(3.0, 2 ** (retry - 1)))
        self.assertEqual(policy.delay(1, retry_after=7), 7)
        self.assertEqual(policy.delay(1, retry_after=600), 60)

    def test_a_retry_is_counted_as_the_typescript_client_counts_it(self) -> None:
        # The attempt it starts of all attempts, then the retry of all retries: the default five
        # attempts said "retry 1 of 4", the TypeScript client "retry 1 of 5" for its six.
        self.assertEqual(describe_retry(1, RetryPolicy().attempts), "attempt 2 of 5 (retry 1 of 4)")
        self.assertEqual(describe_retry(1, 6), "attempt 2 of 6 (retry 1 of 5)")  # TypeScript's retry.limit 5
        self.assertEqual(describe_retry(4, 5), "attempt 5 of 5 (retry 4 of 4)")

    def test_retry_after_header(self) -> None:
        self.assertEqual(parse_retry_after("5"), 5.0)
        self.assertEqual(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), 0.0)
        self.assertIsNone(parse_retry_after("soon"))
        with self.assertRaises(ValueError):
            RetryPolicy(attempts=0)


class ConfigurationTest(unittest.TestCase):
    def test_reads_the_environment_and_refuses_what_is_missing(self) -> None:
        from unittest import mock

        with mock.patch.dict("os.environ", {"FRONTEND_WEBHOOK_URL": "http://127.0.0.1:9", "WEBHOOK_SECRET": "s"}, clear=True):
            client = PrismaAPIClient()
            self.assertIsNone(client.outbox)
        with mock.patch.dict("os.environ", {"WEBHOOK_SECRET": "s"}, clear=True):
            with self.assertRaisesRegex(ConfigurationError, "FRONTEND_WEBHOOK_URL"):
                PrismaAPIClient()
        with mock.patch.dict("os.environ", {"FRONTEND_WEBHOOK_URL": "http://127.0.0.1:9"}, clear=True):
            with self.assertRaisesRegex(ConfigurationError, "WEBHOOK_SECRET"):
                PrismaAPIClient()

    def test_without_an_outbox_an_unreachable_server_gives_false_never_an_exception(self) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]  # closed again: nothing listens there
        client = PrismaAPIClient(f"http://127.0.0.1:{port}", "s", retry=RetryPolicy(attempts=2, base_delay=0.01))
        with self.assertLogs("pipeline_status_client", "WARNING") as logs:
            self.assertFalse(client.initialize_pipeline_stages("run_1"))
            self.assertFalse(client.complete_run("run_1"))
        # Each retry is a warning with its cause and wait (issue 10 item 7), then the loss an error.
        self.assertRegex(logs.output[0], r"^WARNING:pipeline_status_client:Run run_1: stage 1 PROCESSING failed "
                                         r"\(connection refused \(ECONNREFUSED\)\); attempt 2 of 2 \(retry 1 of 1\) in \d+\.\d\d s$")
        self.assertIn("ERROR:pipeline_status_client:Run run_1: stage 1 PROCESSING was not delivered", logs.output[1])
        undelivered = client.undelivered("run_1")
        self.assertFalse(undelivered.all_delivered)
        self.assertEqual((undelivered.queued, undelivered.dead_letters, len(undelivered.failed)), (0, [], 2))
        self.assertTrue(undelivered.failed[0].startswith("Run run_1: stage 1 PROCESSING: "))
        self.assertTrue(client.undelivered("run_2").all_delivered)
        with self.assertRaises(StatusNetworkError):
            client.get_status("run_1")

    def test_a_url_ending_with_the_base_path_is_not_doubled(self) -> None:
        for url in ("https://app.example.com", "https://app.example.com/", "https://app.example.com/api/pipeline",
                    "https://app.example.com/api/pipeline/"):
            client = PrismaAPIClient(url, "s")
            self.assertEqual(client._transport.url("run_1/status"), "https://app.example.com/api/pipeline/run_1/status")

    def test_bad_arguments_return_false_without_sending(self) -> None:
        client = PrismaAPIClient("http://127.0.0.1:9", "s", retry=RetryPolicy(attempts=1))
        with self.assertLogs("pipeline_status_client", "ERROR") as logs:
            self.assertFalse(client.mark_stage_processing("run_1", 6))
            self.assertFalse(client.mark_stage_processing("..", 1))
            self.assertFalse(client.complete_run("run_1", "DONE"))
        self.assertIn("Stage 6 is not in the catalogue (1, 2, 3, 4, 5); PROCESSING not sent", logs.output[0])
        self.assertIn("outside the contract's rule", logs.output[1])
        self.assertEqual(len(client.undelivered().failed), 3)

    def test_a_completion_the_server_would_refuse_is_named_at_the_call_and_not_sent(self) -> None:
        from datetime import datetime, timezone

        client = PrismaAPIClient("http://127.0.0.1:9", "s", retry=RetryPolicy(attempts=1))
        with self.assertLogs("pipeline_status_client", "ERROR") as logs:
            self.assertFalse(client.complete_run("run_1", completed_at="2025-10-25 14:03:11"))
            self.assertFalse(client.complete_run("run_1", completed_at="2025-02-29T00:00:00Z"))
            self.assertFalse(client.complete_run("run_1", completed_at=1761400991))
            self.assertFalse(client.complete_run("run_1", "FAILED", duration=-1.5))
            self.assertFalse(client.complete_run("run_1", duration="12"))
            self.assertFalse(client.complete_run("run_1", duration=True))
        grammar = "must be a date-time written YYYY-MM-DDTHH:MM:SS[.fraction of 1 to 9 digits][Z|\u00b1HH:MM], with a real date and time"
        self.assertEqual([r.getMessage() for r in logs.records], [  # type: ignore[attr-defined]
            f"Run run_1: complete_run completed_at {grammar}, got '2025-10-25 14:03:11'; completion COMPLETED not sent",
            f"Run run_1: complete_run completed_at {grammar}, got '2025-02-29T00:00:00Z'; completion COMPLETED not sent",
            "Run run_1: complete_run completed_at must be a datetime or an ISO 8601 string, got int: 1761400991; completion COMPLETED not sent",
            "Run run_1: complete_run duration must be 0 or more seconds, got -1.5; completion FAILED not sent",
            "Run run_1: complete_run duration must be a number of seconds, got str: '12'; completion COMPLETED not sent",
            "Run run_1: complete_run duration must be a number of seconds, got bool: True; completion COMPLETED not sent",
        ])
        self.assertEqual(client.undelivered("run_1").failed[3], "Run run_1: completion FAILED: duration must be 0 or more seconds, got -1.5")
        # What the server takes is sent (nothing listens on port 9: not delivered, not refused at the call).
        with self.assertLogs("pipeline_status_client", "ERROR") as logs:
            for completed_at in ("2025-10-25T14:03:11.123456", "2025-10-25T14:03:11+02:00", datetime.now(timezone.utc), ""):
                self.assertFalse(client.complete_run("run_2", completed_at=completed_at, duration=float("nan")))
        self.assertEqual(len(logs.records), 1)  # type: ignore[attr-defined]
        self.assertRegex(logs.records[0].getMessage(), r"^Run run_2: completion COMPLETED was not delivered: connection refused")  # type: ignore[attr-defined]

    def test_a_stage_number_that_is_not_an_integer_is_named_so(self) -> None:
        client = PrismaAPIClient("http://127.0.0.1:9", "s", retry=RetryPolicy(attempts=1))
        with self.assertLogs("pipeline_status_client", "ERROR") as logs:
            self.assertFalse(client.mark_stage_processing("run_1", "2"))  # type: ignore[arg-type]
            self.assertFalse(client.mark_stage_complete("run_1", True))  # type: ignore[arg-type]
            self.assertFalse(client.report_progress("run_1", 2.0, percent=1))  # type: ignore[arg-type]
        self.assertIn('The stage number must be an integer (1, 2, 3, 4, 5 in the catalogue), got a string: "2" (pass the number 2); PROCESSING not sent', logs.output[0])
        self.assertIn("The stage number must be an integer (1, 2, 3, 4, 5 in the catalogue), got bool True; COMPLETED not sent", logs.output[1])
        self.assertIn("The stage number must be an integer (1, 2, 3, 4, 5 in the catalogue), got float 2.0; progress not sent", logs.output[2])
        self.assertEqual(client.altered_outputs, [])


class RunnerControlTest(unittest.TestCase):
    def test_heartbeat_interval_within_the_contract(self) -> None:
        for interval in (0.5, 3601):
            with self.assertRaises(ConfigurationError):
                PrismaAPIClient("http://127.0.0.1:9", "s", heartbeat_interval=interval)
        with self.assertRaises(ConfigurationError):
            PrismaAPIClient("http://127.0.0.1:9", "s").start_heartbeats("run_1", 1)

    def test_progress_seqs_increase_and_never_fall_below_the_clock(self) -> None:
        client = PrismaAPIClient("http://127.0.0.1:9", "s")
        seqs = [client._with_seq("run_1", 2, {"percent": 10})["seq"] for _ in range(3)]
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertGreaterEqual(seqs[0], int(time.time() * 1000) - 1000)
        self.assertFalse(client.report_progress("run_1", 9, percent=1))  # not in the catalogue: not sent

    def test_the_outbox_coalesces_progress_only_behind_no_status_change(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            outbox = Outbox(directory)
            add = lambda id, what: outbox.append(id, "run_1", "POST", "run_1/stage-update", id.encode(), what, 0.0, 0.0,  # noqa: E731
                                                coalesce=what.endswith("progress"))
            add("a", "stage 1 PROCESSING")
            add("b", "stage 1 progress")
            add("c", "stage 1 progress")  # replaces b in its place
            add("d", "stage 1 COMPLETED")
            add("e", "stage 1 progress")  # behind a status change: kept apart
            add("f", "stage 1 progress")  # replaces e
            self.assertEqual([(e.id, e.body) for e in outbox.pending("run_1")], [("a", b"a"), ("c", b"c"), ("d", b"d"), ("f", b"f")])


class NonJsonNumbersTest(unittest.TestCase):
    """NaN and ±Infinity are written null everywhere, as JSON.stringify writes them in the
    TypeScript client (issue 20 item 5); progress that cannot be sent is dropped with a warning;
    heartbeat never raises."""

    NAN, INF = float("nan"), float("inf")

    def recording_client(self) -> "tuple[PrismaAPIClient, list]":
        from unittest import mock

        client = PrismaAPIClient("http://127.0.0.1:9", "s", retry=RetryPolicy(attempts=1))
        sent: list = []

        def send(request, *args, **kwargs):  # type: ignore[no-untyped-def]
            sent.append((request.route, json.loads(request.body.decode("utf-8")) if request.body else None))
            return {"run": {"id": "run_1", "status": "PROCESSING"}}

        patcher = mock.patch.object(client._transport, "send", side_effect=send)
        patcher.start()
        self.addCleanup(patcher.stop)
        return client, sent

    def test_one_rule_for_every_body(self) -> None:
        value = {"a": self.NAN, "b": [self.INF, -self.INF, 1.5], "c": (2, self.NAN), "d": {"e": -self.INF}, "f": "NaN", "g": 0}
        self.assertEqual(json_safe(value), {"a": None, "b": [None, None, 1.5], "c": [2, None], "d": {"e": None}, "f": "NaN", "g": 0})
        self.assertEqual(encode_json({"x": self.NAN, "y": [self.INF]}), b'{"x":null,"y":[null]}')
        circular: list = []
        circular.append(circular)
        with self.assertRaisesRegex(ValueError, "Circular"):
            json_safe(circular)
        with self.assertRaises(TypeError):
            encode_json({"x": b"bytes"})

    def test_completion_results_with_nan_are_sent_with_null(self) -> None:
        client, sent = self.recording_client()
        self.assertTrue(client.complete_run("run_1", opportunities=[{"score": self.NAN}, {"score": 0.5}], ratio=self.INF, duration=self.NAN))
        route, body = sent[-1]
        self.assertEqual(route, "run_1/complete")
        self.assertEqual(body["opportunities"], [{"score": None}, {"score": 0.5}])
        self.assertIsNone(body["ratio"])
        self.assertIsNone(body["duration"])
        self.assertEqual(body["status"], "COMPLETED")
        self.assertTrue(client.undelivered("run_1").all_delivered)

    def test_completion_with_datetime_instants_is_sent_in_utc(self) -> None:
        # A user trial: complete_run(completed_at=datetime) failed with "Object of type datetime
        # is not JSON serializable" and the completion was never sent.
        from datetime import datetime, timedelta, timezone

        client, sent = self.recording_client()
        plus_two = timezone(timedelta(hours=2))
        finished = datetime(2025, 10, 25, 16, 3, 11, 123456, tzinfo=plus_two)
        self.assertTrue(client.complete_run("run_1", completed_at=finished, reportedAt=datetime(2025, 1, 2, 3, 4, 5, tzinfo=timezone.utc)))
        route, body = sent[-1]
        self.assertEqual(route, "run_1/complete")
        self.assertEqual(body["completedAt"], "2025-10-25T14:03:11.123Z")
        self.assertEqual(body["reportedAt"], "2025-01-02T03:04:05.000Z")
        self.assertTrue(client.undelivered("run_1").all_delivered)

    def test_naive_datetime_is_local_time(self) -> None:
        import os
        from datetime import datetime

        from pipeline_status_client.contract import iso_instant

        if not hasattr(time, "tzset"):
            self.skipTest("time.tzset is not available on this platform")
        previous = os.environ.get("TZ")

        def restore() -> None:
            if previous is None:
                os.environ.pop("TZ", None)
            else:
                os.environ["TZ"] = previous
            time.tzset()

        self.addCleanup(restore)
        os.environ["TZ"] = "Asia/Kolkata"  # UTC+05:30, no daylight saving time
        time.tzset()
        naive = datetime(2025, 10, 25, 19, 33, 11, 999999)
        self.assertEqual(iso_instant(naive), "2025-10-25T14:03:11.999Z")
        self.assertEqual(encode_json({"completedAt": naive}), b'{"completedAt":"2025-10-25T14:03:11.999Z"}')

    def test_progress_with_nan_is_refused_as_the_typescript_client_refuses_it(self) -> None:
        client, sent = self.recording_client()
        with self.assertLogs("pipeline_status_client", "WARNING") as logs:
            self.assertFalse(client.report_progress("run_1", 2, current=self.NAN, total=40, message="batch 37"))
            self.assertFalse(client.report_progress("run_1", 2, percent=-self.INF))
        self.assertEqual(logs.output, [
            "WARNING:pipeline_status_client:Run run_1: stage 2 progress dropped: progress.current must be a finite number, got nan",
            "WARNING:pipeline_status_client:Run run_1: stage 2 progress dropped: progress.percent must be a finite number, got -inf",
        ])
        self.assertEqual(sent, [])
        # The caller's mistake, not an undelivered update.
        self.assertTrue(client.undelivered("run_1").all_delivered)

    def test_progress_that_cannot_be_sent_is_dropped_with_a_warning(self) -> None:
        client, sent = self.recording_client()
        cases = [
            (dict(current=41, total=40), "progress.current (41) must not exceed progress.total (40)"),
            (dict(percent=150), "progress.percent must be 0 to 100, got 150"),
            (dict(current=-1), "progress.current must be non-negative, got -1"),
            (dict(current="3"), "progress.current must be a number, got str"),
            (dict(message=object()), "progress.message must be a string, got object"),
            (dict(message="x" * 501), "progress.message must be at most 500 characters"),
        ]
        for arguments, reason in cases:
            with self.assertLogs("pipeline_status_client", "WARNING") as logs:
                self.assertFalse(client.report_progress("run_1", 2, **arguments))  # type: ignore[arg-type]
            self.assertEqual(logs.output, [f"WARNING:pipeline_status_client:Run run_1: stage 2 progress dropped: {reason}"])
        self.assertEqual(sent, [])
        # The caller's mistake, not an undelivered update.
        self.assertTrue(client.undelivered("run_1").all_delivered)

    def test_heartbeat_with_nan_progress_drops_the_progress_and_sends_the_heartbeat(self) -> None:
        client, sent = self.recording_client()
        with self.assertLogs("pipeline_status_client", "WARNING") as logs:
            self.assertTrue(client.heartbeat("run_1", 2, {"current": self.NAN, "total": 40, "percent": 37.5}))
        self.assertEqual(logs.output, ["WARNING:pipeline_status_client:Run run_1: heartbeat progress dropped "
                                       "(progress.current must be a finite number, got nan); the heartbeat is sent without it"])
        route, body = sent[-1]
        self.assertEqual(route, "run_1/heartbeat")
        self.assertEqual(body, {"stageNumber": 2})

    def test_a_run_finished_before_this_client_reported_it_names_a_reused_run_id(self) -> None:
        from pipeline_status_client.client import describe_run_finished

        # Whether it finished before this client's first update is the server's order (its first
        # answer to this client), never the run's completedAt against this machine's clock.
        run = {"id": "run_1", "status": "CANCELLED", "error": "stopped by a user", "completedAt": "2025-10-25T14:00:00.000Z"}
        reused = describe_run_finished(run, True)
        self.assertTrue(reused.startswith('Run run_1 was CANCELLED (error: "stopped by a user") on the server at 2025-10-25T14:00:00.000Z, '
                                          "not by this client: it finished before this client's first update for it: "
                                          "the run id was most likely reused"), reused)
        cancelled = describe_run_finished(run, False)
        self.assertIn("the web app cancelled it (POST /cancel)", cancelled)
        swept = describe_run_finished({**run, "status": "FAILED", "error": "No heartbeat for 45 s (the runner announced one every 10 seconds): "
                                       "the runner stopped reporting"}, False)
        self.assertIn("the stale-run sweeper failed it because the runner was silent too long", swept)
        completed = describe_run_finished({**run, "status": "COMPLETED", "error": None}, False)
        self.assertIn("another party completed it", completed)

    def test_a_reused_run_id_is_told_from_a_cancel_by_the_servers_answers_not_by_the_clocks(self) -> None:
        from unittest import mock

        cancelled = {"id": "run_1", "status": "CANCELLED", "error": "stopped", "completedAt": "2999-01-01T00:00:00.000Z"}
        causes = []
        for answers in ([{"outcome": "applied", "run": {"id": "run_1", "status": "PROCESSING"}}, {"outcome": "stale", "run": cancelled}],
                        [{"outcome": "stale", "run": cancelled}]):
            client = PrismaAPIClient("http://127.0.0.1:9", "s", retry=RetryPolicy(attempts=1))
            # First the restart rule's one read of the run (no stage left PROCESSING).
            status = {"run": {"id": "run_1", "status": "PENDING"}, "stages": []}
            patcher = mock.patch.object(client._transport, "send", side_effect=[status, *answers])
            patcher.start()
            self.addCleanup(patcher.stop)
            with self.assertLogs("pipeline_status_client", "WARNING") as logs:
                for stage in range(1, len(answers) + 1):
                    client.mark_stage_processing("run_1", stage)
            causes.append(logs.output[0].split(", not by this client: ", 1)[1])
        # A completedAt far after this machine's now: the old clock comparison called both a cancel.
        self.assertEqual(causes, [
            "the web app cancelled it (POST /cancel), or another runner reporting under the same run id cancelled a stage",
            "it finished before this client's first update for it: the run id was most likely reused (an earlier run, "
            "or another runner, used \"run_1\"); give each run a new id",
        ])

    def test_heartbeat_never_raises(self) -> None:
        from unittest import mock

        client, sent = self.recording_client()
        # Progress the contract refuses: dropped with a warning, the heartbeat still sent.
        with self.assertLogs("pipeline_status_client", "WARNING") as logs:
            self.assertTrue(client.heartbeat("run_1", 2, {"percent": 101, "current": object()}))
        self.assertEqual(logs.output, ["WARNING:pipeline_status_client:Run run_1: heartbeat progress dropped "
                                       "(progress.current must be a number, got object); the heartbeat is sent without it"])
        self.assertEqual(sent[-1][1], {"stageNumber": 2})
        with self.assertLogs("pipeline_status_client", "WARNING") as logs:
            self.assertTrue(client.heartbeat("run_1", None, {"percent": 5}))
        self.assertIn("progress needs stage_number", logs.output[0])
        # Anything unexpected on the way (here a transport that fails in a way it never should).
        with mock.patch.object(client._transport, "send", side_effect=RuntimeError("boom")):
            with self.assertLogs("pipeline_status_client", "WARNING") as logs:
                self.assertFalse(client.heartbeat("run_1", 2, {"percent": 5}))
        self.assertEqual(logs.output, ["WARNING:pipeline_status_client:Run run_1: heartbeat not sent: RuntimeError: boom"])
        with self.assertLogs("pipeline_status_client", "WARNING"):
            self.assertFalse(client.heartbeat("run_1", 2, 42))  # type: ignore[arg-type]


class OutboxTest(unittest.TestCase):
    def test_heads_are_the_first_update_of_each_run_in_order(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            outbox = Outbox(directory)
            for run_id, key in [("a", "1"), ("b", "2"), ("a", "3")]:
                outbox.append(key, run_id, "POST", f"{run_id}/stage-update", b"{}", "x", 0.0, 0.0)
            self.assertEqual([h.id for h in outbox.heads()], ["1", "2"])
            self.assertTrue(outbox.claim(outbox.heads()[0].seq, 30))
            self.assertFalse(outbox.claim(outbox.heads()[0].seq, 30))  # leased
            outbox.ack(outbox.heads()[0].seq)
            self.assertEqual([h.id for h in outbox.heads()], ["2", "3"])
            # A second handle on the same directory (another process) sees the same queue.
            self.assertEqual(Outbox(directory).pending_count("a"), 1)
            entry = outbox.pending("a")[0]
            outbox.dead_letter(entry, 400, "validation_failed", "refused")
            letters = outbox.dead_letters("a")
            self.assertEqual([(d.id, d.status, d.code, json.loads(d.body or b"")) for d in letters], [("3", 400, "validation_failed", {})])

    def test_an_outbox_of_an_older_version_gets_the_kind_column_and_keeps_its_dead_letters(self) -> None:
        import os
        import sqlite3
        from contextlib import closing

        with tempfile.TemporaryDirectory() as directory:
            # The dead-letter table as the version before `kind` made it, with one letter in it.
            with closing(sqlite3.connect(os.path.join(directory, "outbox.sqlite3"), isolation_level=None)) as db:
                db.execute("CREATE TABLE dead_letters (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, run_id TEXT NOT NULL,"
                           " method TEXT NOT NULL, route TEXT NOT NULL, body BLOB, what TEXT NOT NULL, queued_at REAL NOT NULL,"
                           " first_attempt_at REAL NOT NULL, dead_at REAL NOT NULL, status INTEGER, code TEXT, reason TEXT NOT NULL)")
                db.execute("INSERT INTO dead_letters (id, run_id, method, route, body, what, queued_at, first_attempt_at, dead_at,"
                           " status, code, reason) VALUES ('old', 'a', 'POST', 'a/stage-update', x'7b7d', 'x', 0, 0, 0, 400, 'bad', 'refused')")
            outbox = Outbox(directory)
            outbox.append("new", "a", "POST", "a/stage-update", b"{}", "x", 0.0, 0.0)
            outbox.dead_letter(outbox.pending("a")[0], 409, "run_finished", "the run ended elsewhere", kind="superseded")
            self.assertEqual([(d.id, d.code, d.kind) for d in Outbox(directory).dead_letters("a")],
                             [("old", "bad", None), ("new", "run_finished", "superseded")])

    def test_an_outbox_of_an_older_version_keeps_its_queue_and_records_unanswered_attempts(self) -> None:
        import os
        import sqlite3
        from contextlib import closing

        with tempfile.TemporaryDirectory() as directory:
            # The queue as the version before `unanswered` made it, with one completion in it.
            with closing(sqlite3.connect(os.path.join(directory, "outbox.sqlite3"), isolation_level=None)) as db:
                db.execute("CREATE TABLE pending (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, run_id TEXT NOT NULL,"
                           " method TEXT NOT NULL, route TEXT NOT NULL, body BLOB, what TEXT NOT NULL, queued_at REAL NOT NULL,"
                           " first_attempt_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, next_attempt_at REAL NOT NULL,"
                           " lease_until REAL NOT NULL DEFAULT 0, last_error TEXT, refused INTEGER NOT NULL DEFAULT 0)")
                db.execute("INSERT INTO pending (id, run_id, method, route, body, what, queued_at, first_attempt_at, next_attempt_at)"
                           " VALUES ('old', 'a', 'POST', 'a/complete', x'7b7d', 'completion COMPLETED', 0, 0, 0)")
            outbox = Outbox(directory)
            self.assertEqual([(e.id, e.unanswered) for e in outbox.pending("a")], [("old", False)])
            outbox.reschedule(outbox.heads()[0].seq, 0.0, "timed out after 30 s", unanswered=True)
            outbox.reschedule(outbox.heads()[0].seq, 0.0, "answered 503")  # a definite answer later does not clear it
            outbox.append("new", "a", "POST", "a/complete", b"{}", "completion COMPLETED", 0.0, 1.0, "reset", unanswered=True)
            self.assertEqual([(e.id, e.attempts, e.unanswered) for e in Outbox(directory).pending("a")],
                             [("old", 2, True), ("new", 1, True)])

    def test_a_head_leased_by_another_process_is_due_when_the_lease_ends(self) -> None:
        with tempfile.TemporaryDirectory() as directory:
            outbox = Outbox(directory)
            self.assertIsNone(outbox.next_due())
            outbox.append("1", "a", "POST", "a/stage-update", b"{}", "x", 0.0, 0.0)
            self.assertEqual(outbox.next_due(), 0.0)
            self.assertTrue(Outbox(directory).claim(outbox.heads()[0].seq, 30))
            self.assertGreater(outbox.next_due() or 0, time.time() + 29)


if __name__ == "__main__":
    unittest.main()


class StageRetryTest(unittest.TestCase):
    def test_last_error_is_cut_to_the_contracts_limit(self) -> None:
        from pipeline_status_client.stage_retry import MAX_LAST_ERROR_LENGTH, last_error_of

        self.assertEqual(last_error_of(TimeoutError("model timed out")), "model timed out")
        self.assertEqual(last_error_of(ValueError()), "ValueError")
        self.assertEqual(last_error_of(RuntimeError("nul \x00 here")), "nul \ufffd here")
        cut = last_error_of(RuntimeError("x" * 5000))
        self.assertEqual(len(cut), MAX_LAST_ERROR_LENGTH)
        self.assertTrue(cut.endswith("\u2026"))

    def test_the_wait_is_a_number_a_function_or_full_jitter_capped_at_30_s(self) -> None:
        from pipeline_status_client.stage_retry import wait_seconds

        self.assertEqual(wait_seconds(2.5, 1), 2.5)
        self.assertEqual(wait_seconds(lambda attempt: attempt * 10.0, 3), 30.0)
        self.assertEqual(wait_seconds(-1, 1), 0.0)
        for attempt, ceiling in ((1, 1.0), (2, 2.0), (9, 30.0)):
            self.assertTrue(0 <= wait_seconds(None, attempt) <= ceiling)

    def test_attempts_below_one_are_refused(self) -> None:
        client = PrismaAPIClient("http://127.0.0.1:9", "s", background=False)
        with self.assertRaises(ConfigurationError):
            client.run_stage_with_retries("run_1", 1, lambda: None, attempts=0)
