"""The client against real servers over HTTP: the package's mock server, and the Express
example on PostgreSQL (PGlite without PSC_TEST_DATABASE_URL), each behind a recording,
fault-injecting proxy (support.Proxy) so that the tests assert on the wire. Each class starts its
server from this repository (Node.js, ``npm ci``, and for the Express example
``node scripts/prisma-generate.mjs``); without them it is skipped with the reason, or fails under
``PIPELINE_STATUS_REQUIRE_ALL`` (support.require_servers)."""
import json
import logging
import os
import re
import tempfile
import threading
import time
import unittest
import uuid

from .original_runner import OUTPUTS, report
from .support import SECRET, ExpressDatabase, Fault, Proxy, free_port, require_servers, run_python, start_express, start_mock

from pipeline_status_client import TRUNCATION_MARKER, CatalogueMismatchError, ConfigurationError, PrismaAPIClient, QueuedCompletion, RetryPolicy, StatusHttpError

#: The TypeScript runPipeline's warning for a /complete answered duplicate, up to its cause (src/client/run-pipeline.ts).
DUPLICATE = ("The run's completion had already been received (outcome \"duplicate\"), so these results did not reach the app's "
             "onRunCompleted hook, which ran once with the earlier /complete's: ")
FAST = RetryPolicy(attempts=4, base_delay=0.05, max_delay=0.2)
STAGE_NAMES = ["Input Processing", "Signal Amplification", "General Translation", "Brand Contextualization", "Opportunity Generation"]


def new_run_id() -> str:
    return f"py-{uuid.uuid4().hex[:12]}"


class ServerTests:
    """Cases run against each server; ``server`` and ``proxy`` come from the subclass."""

    proxy: Proxy
    origin: str

    def client(self, **options: object) -> PrismaAPIClient:
        options.setdefault("retry", FAST)
        return PrismaAPIClient(self.proxy.origin, SECRET, **options)  # type: ignore[arg-type]

    def created_run(self) -> str:
        run_id = new_run_id()
        run = PrismaAPIClient(self.origin, SECRET).create_run(run_id)
        self.assertEqual((run["id"], run["status"]), (run_id, "PENDING"))  # type: ignore[attr-defined]
        return run_id

    def test_the_original_runner_call_sequence(self) -> None:
        run_id = self.created_run()
        env = {"FRONTEND_WEBHOOK_URL": self.proxy.origin, "WEBHOOK_SECRET": SECRET}
        from unittest import mock

        with mock.patch.dict(os.environ, env):
            client = PrismaAPIClient()  # no arguments, as the original
        self.assertEqual(report(client, run_id), [True] * 11)
        sent = [(r.path.rsplit("/", 1)[1], r.json()) for r in self.proxy.updates(run_id)]
        expected = [("stage-update", (1, "PROCESSING"))]
        for n in range(1, 6):
            if n > 1:
                expected.append(("stage-update", (n, "PROCESSING")))
            expected.append(("stage-update", (n, "COMPLETED")))
        expected.append(("complete", "COMPLETED"))
        self.assertEqual(
            [(route, (b["stageNumber"], b["status"]) if route == "stage-update" else b["status"]) for route, b in sent], expected)
        first_complete = sent[1][1]
        self.assertEqual(sorted(first_complete), ["completedAt", "output", "stageName", "stageNumber", "status"])
        self.assertEqual(json.loads(first_complete["output"]), OUTPUTS[1])
        self.assertRegex(first_complete["completedAt"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")
        # The original runner's exact payloads (test/support/fixtures.ts PYTHON_RUNNER_PAYLOADS).
        self.assertEqual(sent[0][1], {"stageNumber": 1, "stageName": "Input Processing", "status": "PROCESSING", "output": ""})
        self.assertEqual(len({r.headers["idempotency-key"] for r in self.proxy.updates(run_id)}), 11)
        status = client.get_status(run_id)
        self.assertEqual(status["run"]["status"], "COMPLETED")
        # The server has two more pipelines (support.PIPELINES_FILE); a run created without one is in default.
        self.assertEqual(status["run"]["pipeline"], "default")
        self.assertIsNotNone(status["run"]["completionReceivedAt"])
        self.assertEqual([(s["stageNumber"], s["stageName"], s["status"]) for s in status["stages"]],
                         [(n, STAGE_NAMES[n - 1], "COMPLETED") for n in range(1, 6)])
        self.assertEqual(status["stages"][3]["output"], OUTPUTS[4])
        self.assertEqual(json.loads(status["stages"][1]["output"]), OUTPUTS[2])
        self.assertEqual(client.last_known_run(run_id)["status"], "COMPLETED")  # type: ignore[index]

    def test_retries_keep_one_idempotency_key_and_honour_retry_after(self) -> None:
        run_id = self.created_run()
        self.proxy.faults.append(Fault("/stage-update", 503, times=1, retry_after="1"))
        self.proxy.faults.append(Fault("/stage-update", 0, times=1))  # connection dropped
        self.proxy.faults.append(Fault("/stage-update", 429, times=1))
        client = self.client()
        started = time.monotonic()
        self.assertTrue(client.initialize_pipeline_stages(run_id))
        self.assertGreaterEqual(time.monotonic() - started, 1.0)  # Retry-After: 1 was honoured
        attempts = [r for r in self.proxy.records if r.path.endswith(f"/{run_id}/stage-update")]
        self.assertEqual([r.status for r in attempts], [503, 0, 429, 200])
        self.assertEqual(len({r.headers["idempotency-key"] for r in attempts}), 1)
        self.assertEqual(len({r.body for r in attempts}), 1)
        self.assertEqual(client.get_status(run_id)["stages"][0]["status"], "PROCESSING")

    def test_unstorable_and_oversized_outputs_never_lose_the_status(self) -> None:
        run_id = self.created_run()
        with tempfile.TemporaryDirectory() as outbox, self.assertLogs("pipeline_status_client", logging.WARNING) as logs:
            client = self.client(outbox_dir=outbox, background=False)
            self.assertTrue(client.mark_stage_complete(run_id, 1, "nul\x00 and lone \ud800 surrogate"))
            big = "x" * (1024 * 1024 + 10)
            self.assertTrue(client.mark_stage_complete(run_id, 2, big))
            self.assertEqual(client.dead_letters(run_id), [])
        self.assertTrue(any("U+FFFD" in line for line in logs.output))
        self.assertTrue(any("too large (413, limit" in line for line in logs.output))
        stages = client.get_status(run_id)["stages"]
        self.assertEqual(stages[0]["output"], "nul\ufffd and lone \ufffd surrogate")
        self.assertEqual(stages[1]["status"], "COMPLETED")
        self.assertTrue(stages[1]["output"].endswith(TRUNCATION_MARKER))
        attempts = [r for r in self.proxy.records if r.path.endswith(f"/{run_id}/stage-update")][1:]
        self.assertEqual([r.status for r in attempts], [413, 200])
        self.assertNotEqual(attempts[0].headers["idempotency-key"], attempts[1].headers["idempotency-key"])

    def test_outputs_json_cannot_hold_never_lose_the_status(self) -> None:
        run_id = self.created_run()
        client = self.client()
        circular: list = []
        circular.append(circular)
        with self.assertLogs("pipeline_status_client", logging.WARNING):
            self.assertTrue(client.mark_stage_complete(run_id, 1, {"nan": float("nan"), "inf": [float("inf"), -float("inf")], "n": 1.5}))
            self.assertTrue(client.mark_stage_complete(run_id, 2, b"raw bytes"))
            self.assertTrue(client.mark_stage_complete(run_id, 3, object()))
            self.assertTrue(client.mark_stage_complete(run_id, 4, circular))
        stages = client.get_status(run_id)["stages"]
        # What JSON.stringify writes for NaN and Infinity: null.
        self.assertEqual(json.loads(stages[0]["output"]), {"nan": None, "inf": [None, None], "n": 1.5})
        self.assertEqual([stage["status"] for stage in stages[:4]], ["COMPLETED"] * 4)
        self.assertEqual(stages[1]["output"], "[output not serialisable as JSON: TypeError: Object of type bytes is not JSON serializable]")
        self.assertEqual(stages[2]["output"], "[output not serialisable as JSON: TypeError: Object of type object is not JSON serializable]")
        self.assertEqual(stages[3]["output"], "[output not serialisable as JSON: ValueError: Circular reference detected]")
        self.assertEqual([(a.stage_number, a.kind, a.reason) for a in client.altered_outputs], [
            (2, "unserialisable", "TypeError: Object of type bytes is not JSON serializable"),
            (3, "unserialisable", "TypeError: Object of type object is not JSON serializable"),
            (4, "unserialisable", "ValueError: Circular reference detected"),
        ])

    def test_a_rotation_list_in_webhook_secret_sends_its_first_entry(self) -> None:
        run_id = self.created_run()
        from unittest import mock

        with mock.patch.dict(os.environ, {"WEBHOOK_SECRET": f" {SECRET} , old-secret "}):
            client = PrismaAPIClient(self.proxy.origin, retry=FAST)  # the secret from the environment
        self.assertTrue(client.mark_stage_complete(run_id, 1, "done"))
        sent = [r for r in self.proxy.records if r.path.endswith(f"/{run_id}/stage-update")]
        self.assertEqual([(r.status, r.headers["x-webhook-secret"]) for r in sent], [(200, SECRET)])

    def test_a_refused_update_in_the_outbox_is_dead_lettered_and_the_run_flows(self) -> None:
        run_id = self.created_run()
        with tempfile.TemporaryDirectory() as outbox:
            self.proxy.faults.append(Fault(f"/{run_id}/stage-update", 503, times=100))
            client = self.client(outbox_dir=outbox, background=False, retry=RetryPolicy(attempts=1))
            with self.assertLogs("pipeline_status_client", logging.WARNING):
                self.assertEqual(report(client, run_id), [True] * 11)
            self.assertEqual(client.pending_count(run_id), 11)
            self.proxy.faults.clear()
            # Stage 1 PROCESSING is refused for good once the server is back; the rest flows.
            self.proxy.faults.append(Fault(f"/{run_id}/stage-update", 400, times=1))
            with self.assertLogs("pipeline_status_client", logging.ERROR) as logs:
                self.assertTrue(client.flush(timeout=60))
            self.assertIn("dead-lettered", logs.output[0])
            letters = client.dead_letters(run_id)
            self.assertEqual([(d.status, json.loads(d.body or b"")["status"]) for d in letters], [(400, "PROCESSING")])
            delivered = [r for r in self.proxy.updates(run_id) if r.status == 200]
            self.assertEqual([r.json().get("stageNumber", "complete") for r in delivered], [1, 2, 2, 3, 3, 4, 4, 5, 5, "complete"])
            self.assertEqual(client.get_status(run_id)["run"]["status"], "COMPLETED")

    def test_a_secret_mismatch_is_kept_and_retried_slowly_until_fixed(self) -> None:
        run_id = self.created_run()
        with tempfile.TemporaryDirectory() as outbox:
            wrong = PrismaAPIClient(self.proxy.origin, "not-the-secret", outbox_dir=outbox, background=False, retry=FAST,
                                    slow_retry_interval=3600)
            with self.assertLogs("pipeline_status_client", logging.ERROR) as logs:
                self.assertTrue(wrong.initialize_pipeline_stages(run_id))
                self.assertTrue(wrong.mark_stage_processing(run_id, 2))
            self.assertIn("check that the runner's secret matches", logs.output[0])
            self.assertEqual(wrong.pending_count(run_id), 2)
            self.assertEqual(wrong.dead_letters(), [])
            self.assertGreater(wrong.outbox.pending(run_id)[0].next_attempt_at, time.time() + 3000)  # type: ignore[union-attr]
            self.assertEqual([r.status for r in self.proxy.updates(run_id)], [401])  # tried once, not hammered
            # A flush tries once more, then returns: only a fixed secret can deliver them.
            with self.assertLogs("pipeline_status_client", logging.ERROR) as again:
                self.assertFalse(wrong.flush(timeout=600))
            self.assertIn("Kept queued, retried in 3600 s", again.output[0])
            self.assertEqual([r.status for r in self.proxy.updates(run_id)], [401, 401])
            fixed = self.client(outbox_dir=outbox, background=False)
            self.assertTrue(fixed.flush(timeout=30))
            self.assertEqual([s["stageNumber"] for s in fixed.get_status(run_id)["stages"]], [1, 2])

    def test_two_processes_flushing_one_outbox_deliver_each_update_once(self) -> None:
        run_id = self.created_run()
        with tempfile.TemporaryDirectory() as outbox:
            self.proxy.faults.append(Fault(f"/{run_id}/", 503, times=100))
            with self.assertLogs("pipeline_status_client", logging.WARNING):
                self.assertEqual(report(self.client(outbox_dir=outbox, background=False, retry=RetryPolicy(attempts=1)), run_id), [True] * 11)
            self.proxy.faults.clear()
            flushers = [self.client(outbox_dir=outbox, background=False) for _ in range(2)]
            threads = [threading.Thread(target=client.flush, args=(60,)) for client in flushers]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            delivered = [r for r in self.proxy.updates(run_id) if r.status == 200]
            self.assertEqual(len(delivered), 11)
            self.assertEqual(len({r.headers["idempotency-key"] for r in delivered}), 11)
            self.assertEqual(flushers[0].get_status(run_id)["run"]["status"], "COMPLETED")

    def test_a_completion_that_waited_in_the_outbox_tells_its_outcome(self) -> None:
        applied, duplicate, refused = self.created_run(), self.created_run(), self.created_run()
        events: list = []
        with tempfile.TemporaryDirectory() as outbox:
            for run_id in (applied, duplicate, refused):
                self.proxy.faults.append(Fault(f"/{run_id}/complete", 503, times=100))
            client = self.client(outbox_dir=outbox, background=False, retry=RetryPolicy(attempts=1), on_queued_completion=events.append)
            with self.assertLogs("pipeline_status_client", logging.WARNING):
                for run_id in (applied, duplicate, refused):
                    self.assertTrue(client.complete_run(run_id, "COMPLETED", report=run_id))  # queued
            self.assertEqual(events, [])
            # Another party completes one of the runs while its /complete waits; the server refuses another's for good.
            self.assertTrue(PrismaAPIClient(self.origin, SECRET).complete_run(duplicate, "COMPLETED", report="elsewhere"))
            self.proxy.faults.clear()
            self.proxy.faults.append(Fault(f"/{refused}/complete", 400))
            with self.assertLogs("pipeline_status_client", logging.INFO) as logs:
                self.assertTrue(client.flush(timeout=30))
            keys = {r.path.split("/")[-2]: r.headers["idempotency-key"] for r in self.proxy.records if r.path.endswith("/complete")}
            by_run = {event.run_id: event for event in events}
            self.assertEqual(sorted(by_run), sorted([applied, duplicate, refused]))
            self.assertEqual((by_run[applied].outcome, by_run[applied].idempotency_key, by_run[applied].reason), ("applied", keys[applied], None))
            self.assertEqual((by_run[applied].answer or {}).get("outcome"), "applied")
            self.assertEqual((by_run[duplicate].outcome, (by_run[duplicate].answer or {}).get("outcome")), ("duplicate", "duplicate"))
            self.assertEqual((by_run[refused].outcome, by_run[refused].answer), ("dead-lettered", None))
            self.assertIn("400", by_run[refused].reason or "")
            warned = [line for line in logs.output if line.startswith("WARNING") and duplicate in line]
            self.assertEqual(len(warned), 1, logs.output)
            self.assertIn("so these results did not reach the app's onRunCompleted hook", warned[0])

    def test_a_queued_completion_whose_answer_cannot_be_read_is_unknown(self) -> None:
        # As the TypeScript outbox test: accepted (2xx), so it leaves the outbox; but what the server did with it cannot be read.
        for answer, said in ((b"Bad gateway page", "is not JSON"), (b"", "is not JSON"), (b"[]", "does not match the contract"),
                             (b'{"ok":true}', "does not match the contract"),
                             (b'{"outcome":"applied","run":{"id":"r","status":"COMPLETED"}}', "does not match the contract")):
            with self.subTest(answer=answer), tempfile.TemporaryDirectory() as outbox:
                run_id = self.created_run()
                events: list = []
                self.proxy.faults.append(Fault(f"/{run_id}/complete", 503, times=100))
                client = self.client(outbox_dir=outbox, background=False, retry=RetryPolicy(attempts=1), on_queued_completion=events.append)
                with self.assertLogs("pipeline_status_client", logging.WARNING):
                    self.assertTrue(client.complete_run(run_id, "COMPLETED"))  # queued
                key = client.outbox.pending(run_id)[0].id
                self.proxy.faults.clear()
                self.proxy.faults.append(Fault(f"/{run_id}/complete", 200, body=answer))
                with self.assertLogs("pipeline_status_client", logging.INFO) as logs:
                    self.assertTrue(client.flush(timeout=30))
                self.assertEqual(client.undelivered().queued, 0)
                self.assertEqual(events, [QueuedCompletion(
                    run_id, key, "unknown",
                    reason=f"the server accepted it (2xx), but its answer {said}: whether its results reached the app's onRunCompleted hook is unknown")])
                self.assertEqual([line for line in logs.output if line.startswith(("ERROR", "WARNING"))], [
                    f"ERROR:pipeline_status_client:Run {run_id}: completion COMPLETED delivered from the outbox got an answer that {said}; "
                    "its outcome is unknown"])
                self.assertIsNone(client.completion_outcome(run_id))
                client.close()

    def test_an_update_older_than_max_age_is_dead_lettered(self) -> None:
        run_id = self.created_run()
        with tempfile.TemporaryDirectory() as outbox:
            self.proxy.faults.append(Fault(f"/{run_id}/stage-update", 503, times=100))
            client = self.client(outbox_dir=outbox, background=False, retry=RetryPolicy(attempts=1), max_age=0.3)
            with self.assertLogs("pipeline_status_client", logging.WARNING):
                self.assertTrue(client.initialize_pipeline_stages(run_id))
                self.assertTrue(client.mark_stage_processing(run_id, 2))
            time.sleep(0.4)
            self.proxy.faults.clear()
            with self.assertLogs("pipeline_status_client", logging.ERROR):
                self.assertTrue(client.flush(timeout=30))
            self.assertEqual([d.reason.split(":")[0] for d in client.dead_letters(run_id)], ["expired", "expired"])
            self.assertEqual(client.get_status(run_id)["stages"], [])

    def test_receiver_down_then_a_new_process_delivers_everything_once_in_order(self) -> None:
        run_id = self.created_run()
        port = free_port()  # nothing listens here while the run is reported
        with tempfile.TemporaryDirectory() as outbox:
            env = {"FRONTEND_WEBHOOK_URL": f"http://127.0.0.1:{port}", "WEBHOOK_SECRET": SECRET,
                   "PIPELINE_STATUS_OUTBOX_DIR": outbox, "PSC_RUN_ID": run_id}
            first = run_python("original_runner.py", {**env, "PSC_MODE": "report"})
            self.assertEqual(first.returncode, 0, first.stderr)
            self.assertEqual(json.loads(first.stdout), {"results": [True] * 11, "pending": 11})
            self.restart_receiver()
            proxy = Proxy(self.origin, port=port)
            try:
                second = run_python("original_runner.py", {**env, "PSC_MODE": "flush"})
                self.assertEqual(second.returncode, 0, second.stderr)
                self.assertEqual(json.loads(second.stdout), {"empty": True, "pending": 0})
                sent = proxy.updates(run_id)
            finally:
                proxy.close()
        self.assertEqual([r.status for r in sent], [200] * 11)
        self.assertEqual(len({r.headers["idempotency-key"] for r in sent}), 11)  # each once
        order = [(b.get("stageNumber"), b["status"]) for b in (r.json() for r in sent)]
        self.assertEqual(order, [(1, "PROCESSING"), (1, "COMPLETED"), (2, "PROCESSING"), (2, "COMPLETED"), (3, "PROCESSING"),
                                 (3, "COMPLETED"), (4, "PROCESSING"), (4, "COMPLETED"), (5, "PROCESSING"), (5, "COMPLETED"),
                                 (None, "COMPLETED")])
        status = PrismaAPIClient(self.origin, SECRET).get_status(run_id)
        self.assertEqual(status["run"]["status"], "COMPLETED")
        self.assertIsNotNone(status["run"]["completionReceivedAt"])
        self.assertEqual([s["status"] for s in status["stages"]], ["COMPLETED"] * 5)

    def cancel(self, run_id: str, reason: str) -> int:
        """What the web app's "Stop" button does: ``POST /cancel``; returns the HTTP status."""
        import urllib.request

        request = urllib.request.Request(
            f"{self.origin}/api/pipeline/{run_id}/cancel", data=json.dumps({"reason": reason}).encode(), method="POST",
            headers={"Content-Type": "application/json", "X-Webhook-Secret": SECRET})
        with urllib.request.urlopen(request, timeout=30) as response:
            return int(response.status)

    def wait_for(self, condition: "object", timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while not condition():  # type: ignore[operator]
            if time.monotonic() > deadline:
                raise AssertionError("condition not met in time")
            time.sleep(0.05)

    def test_heartbeats_while_a_stage_runs_and_the_runner_learns_of_a_cancel(self) -> None:
        run_id = self.created_run()
        finished: list = []
        client = self.client(heartbeat_interval=1, on_run_finished=lambda rid, run: finished.append((rid, run["status"], run["error"])))
        try:
            self.assertTrue(client.initialize_pipeline_stages(run_id))
            beats = lambda: [r for r in self.proxy.records if r.path.endswith(f"/{run_id}/heartbeat")]  # noqa: E731
            self.wait_for(lambda: len(beats()) >= 2)
            self.assertEqual(beats()[0].json(), {"stageNumber": 1, "intervalMs": 1000})
            self.assertEqual(self.cancel(run_id, "stopped by the user"), 200)
            # The next heartbeat's answer tells the client, within one interval.
            self.wait_for(lambda: finished)
            self.assertEqual(finished, [(run_id, "CANCELLED", "stopped by the user")])
            self.assertEqual(client.run_finished(run_id)["status"], "CANCELLED")  # type: ignore[index]
            with self.assertLogs("pipeline_status_client", logging.WARNING):
                self.assertFalse(client.mark_stage_complete(run_id, 1, {"late": True}))
                self.assertFalse(client.mark_stage_processing(run_id, 2))
            sent_after = [r for r in self.proxy.updates(run_id) if r.path.endswith("/stage-update")]
            self.assertEqual([r.json()["status"] for r in sent_after], ["PROCESSING"])  # nothing sent after the cancel
            count = len(beats())
            time.sleep(1.5)
            self.assertEqual(len(beats()), count)  # the heartbeat thread stopped
        finally:
            client.close()

    def test_a_refused_update_after_a_cancel_returns_false_and_tells_the_runner(self) -> None:
        run_id = self.created_run()
        finished: list = []
        client = self.client(on_run_finished=lambda rid, run: finished.append(run["status"]))
        self.assertTrue(client.initialize_pipeline_stages(run_id))
        self.assertEqual(self.cancel(run_id, "no longer needed"), 200)
        with self.assertLogs("pipeline_status_client", logging.WARNING):
            self.assertFalse(client.mark_stage_complete(run_id, 1, "late"))  # 409: the stage was cancelled
        self.assertEqual(finished, ["CANCELLED"])
        self.assertEqual(client.run_finished(run_id)["error"], "no longer needed")  # type: ignore[index]

    def test_queued_updates_of_a_run_cancelled_while_unreachable_are_superseded_not_undelivered(self) -> None:
        run_id = self.created_run()
        finished: list = []
        with tempfile.TemporaryDirectory() as outbox:
            client = self.client(outbox_dir=outbox, background=False, retry=RetryPolicy(attempts=1),
                                 on_run_finished=lambda rid, run: finished.append((run["status"], run["error"])))
            try:
                self.assertTrue(client.mark_stage_processing(run_id, 1))
                self.assertTrue(client.mark_stage_complete(run_id, 1, "one"))
                self.assertTrue(client.mark_stage_processing(run_id, 2))
                # The runner loses the server; the web app's user cancels the run meanwhile.
                self.proxy.faults.append(Fault(f"/{run_id}/stage-update", 503, times=100))
                with self.assertLogs("pipeline_status_client", logging.WARNING):
                    self.assertTrue(client.mark_stage_complete(run_id, 2, "two"))
                self.assertTrue(client.mark_stage_processing(run_id, 3))
                self.assertTrue(client.mark_stage_complete(run_id, 3, "three"))
                self.assertTrue(client.mark_stage_processing(run_id, 4))
                self.assertTrue(client.mark_stage_failed(run_id, 4, "boom"))
                self.assertEqual(client.pending_count(run_id), 5)
                self.proxy.faults.clear()
                self.assertEqual(self.cancel(run_id, "stopped by the user"), 200)
                with self.assertLogs("pipeline_status_client", logging.DEBUG) as logs:
                    self.assertTrue(client.flush(10))
                self.assertEqual([r.levelno for r in logs.records if r.levelno >= logging.ERROR], [])
                self.assertEqual(len([r for r in logs.records if "superseded, not undelivered" in r.getMessage()]), 1)
                self.assertEqual(finished, [("CANCELLED", "stopped by the user")])
                undelivered = client.undelivered(run_id)
                self.assertTrue(undelivered.all_delivered)
                self.assertEqual(undelivered.dead_letters, [])
                # The late COMPLETED of stage 3 (no row yet) was stored; the others were refused.
                self.assertEqual([(letter.what, letter.kind, letter.code) for letter in undelivered.superseded], [
                    ("stage 2 COMPLETED", "superseded", "stage_finished"),
                    ("stage 3 PROCESSING", "superseded", None),
                    ("stage 4 PROCESSING", "superseded", None),
                    ("stage 4 FAILED", "superseded", "run_finished"),
                ])
                stages = client.get_status(run_id)["stages"]
                self.assertEqual([(s["stageNumber"], s["status"]) for s in stages], [(1, "COMPLETED"), (2, "CANCELLED"), (3, "COMPLETED")])
            finally:
                client.close()

    def test_queued_updates_of_a_run_the_web_app_completed_meanwhile_say_so_once_not_a_reused_run_id(self) -> None:
        finished: list = []
        with tempfile.TemporaryDirectory() as outbox:
            client = self.client(outbox_dir=outbox, background=False, retry=RetryPolicy(attempts=1),
                                 on_run_finished=lambda rid, run: finished.append(run["status"]))
            try:
                # The runner cannot reach the server from its first update on; the web app completes the run meanwhile.
                run_id = self.created_run()
                self.proxy.faults.append(Fault(f"/{run_id}/stage-update", 503, times=100))
                with self.assertLogs("pipeline_status_client", logging.WARNING):
                    self.assertTrue(client.mark_stage_processing(run_id, 1))
                self.assertTrue(client.mark_stage_complete(run_id, 1, "one"))
                self.proxy.faults.clear()
                self.complete_elsewhere(run_id)
                with self.assertLogs("pipeline_status_client", logging.DEBUG) as logs:
                    self.assertTrue(client.flush(10))
                warnings = [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]
                self.assertEqual(len(warnings), 1, warnings)
                self.assertTrue(warnings[0].startswith(f"Run {run_id} ended elsewhere while its updates waited in the outbox; "), warnings)
                self.assertEqual([r.getMessage().split(", not by this client: ")[1] for r in logs.records if "not by this client" in r.getMessage()],
                                 ["it ended while this client's updates for it waited in the outbox"])
                self.assertEqual(finished, ["COMPLETED"])
                self.assertTrue(client.undelivered(run_id).all_delivered)
                # A run completed before this client's first update was sent: the reused-id advice stays.
                reused = self.created_run()
                self.complete_elsewhere(reused)
                with self.assertLogs("pipeline_status_client", logging.WARNING) as logs:
                    self.assertFalse(client.mark_stage_processing(reused, 1))
                self.assertIn("it finished before this client's first update for it: the run id was most likely reused",
                              logs.records[0].getMessage())  # type: ignore[attr-defined]
            finally:
                client.close()

    def test_a_final_status_again_with_another_output_is_a_conflict_warning(self) -> None:
        run_id = self.created_run()
        first, second = self.client(), self.client()
        self.assertTrue(first.mark_stage_complete(run_id, 1, {"rows": 12}))
        with self.assertLogs(second.log, logging.WARNING) as logged:  # type: ignore[attr-defined]
            self.assertTrue(second.mark_stage_complete(run_id, 1, {"rows": 13}))
            # The same output again is a duplicate: no warning.
            self.assertTrue(second.mark_stage_complete(run_id, 1, {"rows": 12}))
        self.assertEqual(len(logged.records), 1)  # type: ignore[attr-defined]
        self.assertEqual(
            logged.records[0].getMessage(),  # type: ignore[attr-defined]
            f'Run {run_id}: stage 1 COMPLETED: the server already had stage 1 COMPLETED with another output and kept it '
            '(outcome "conflict"); this output was not stored. Cause: the stage was already final with another output, set '
            "earlier by a cancel (the app's POST /cancel stores unfinished stages CANCELLED without output), by another runner "
            'on the same run id, or by a run of this stage again. Fix: nothing after a cancel; otherwise give each execution '
            'its own run id')
        stored = first.get_status(run_id)["stages"][0]
        self.assertEqual((stored["status"], json.loads(stored["output"])), ("COMPLETED", {"rows": 12}))  # type: ignore[attr-defined]

    def completed_stages(self, client: PrismaAPIClient) -> str:
        """A run whose five stages ``client`` completed: the server holds it COMPLETED, no /complete received."""
        run_id = self.created_run()
        for number in range(1, 6):
            self.assertTrue(client.mark_stage_processing(run_id, number))
            self.assertTrue(client.mark_stage_complete(run_id, number, OUTPUTS[number]))
        return run_id

    def complete_elsewhere(self, run_id: str) -> None:
        """Another party's /complete of the run, straight to the server: applied, the hook runs with its results."""
        elsewhere = PrismaAPIClient(self.origin, SECRET, retry=FAST)
        self.assertTrue(elsewhere.complete_run(run_id, "COMPLETED", fullReportMarkdown="from elsewhere"))
        self.assertEqual(elsewhere.completion_outcome(run_id), "applied")

    def test_a_completion_answered_duplicate_says_its_results_did_not_reach_the_hook(self) -> None:
        client = self.client()
        run_id = self.completed_stages(client)
        self.complete_elsewhere(run_id)
        with self.assertLogs("pipeline_status_client", logging.WARNING) as logs:
            self.assertTrue(client.complete_run(run_id, "COMPLETED", duration=1.0, fullReportMarkdown="mine"))
        self.assertEqual([r.getMessage() for r in logs.records], [  # type: ignore[attr-defined]
            f"Run {run_id}: {DUPLICATE}another /complete of this run was received first (another runner or process on the same "
            "run id, or the web app)"])
        self.assertEqual(client.completion_outcome(run_id), "duplicate")
        # Delivered: the server has the run's completion, only not these results.
        self.assertTrue(client.undelivered(run_id).all_delivered)
        self.assertIsNone(client.run_finished(run_id))
        # A runner completing its own run twice: the second's results did not reach the hook either.
        own = self.client()
        run_id = self.completed_stages(own)
        self.assertTrue(own.complete_run(run_id, "COMPLETED", fullReportMarkdown="first"))
        self.assertEqual(own.completion_outcome(run_id), "applied")
        with self.assertLogs("pipeline_status_client", logging.WARNING) as logs:
            self.assertTrue(own.complete_run(run_id, "COMPLETED", fullReportMarkdown="second"))
        self.assertEqual([r.getMessage() for r in logs.records],  # type: ignore[attr-defined]
                         [f"Run {run_id}: {DUPLICATE}this client's own earlier complete_run of this run"])
        self.assertEqual(own.completion_outcome(run_id), "duplicate")

    def test_a_duplicate_after_an_attempt_the_server_took_without_answering_names_both_possibilities(self) -> None:
        client = self.client()
        run_id = self.completed_stages(client)
        # The first attempt reaches the server (applied: the hook runs with these results), its answer is lost.
        self.proxy.faults.append(Fault("/complete", 0, times=1, forwarded=True))
        with self.assertLogs("pipeline_status_client", logging.WARNING) as logs:
            self.assertTrue(client.complete_run(run_id, "COMPLETED", fullReportMarkdown="mine"))
        messages = [r.getMessage() for r in logs.records]  # type: ignore[attr-defined]
        self.assertEqual(len(messages), 2, messages)
        self.assertRegex(messages[0], rf"^Run {run_id}: completion COMPLETED failed \(.+\); attempt 2 of 4 \(retry 1 of 3\) in ")
        cause = re.search(r"failed \((.+)\); attempt", messages[0]).group(1)  # type: ignore[union-attr]
        self.assertEqual(messages[1], (
            f'Run {run_id}: The run\'s completion was answered "duplicate" after an earlier attempt of it got no definite answer '
            f"({cause}), so that attempt may have been received: if it was, the app's onRunCompleted hook ran once with these "
            "results; if another /complete of this run (another runner or process on the same run id, or the web app) was "
            "received first, these results did not reach it"))
        self.assertEqual(client.completion_outcome(run_id), "duplicate")
        self.assertEqual([r.status for r in self.proxy.records if r.path.endswith("/complete")], [0, 200])

    def test_a_queued_completion_answered_duplicate_from_the_outbox_says_so_once(self) -> None:
        events: list = []
        with tempfile.TemporaryDirectory() as outbox:
            client = self.client(outbox_dir=outbox, background=False, on_queued_completion=events.append)
            run_id = self.completed_stages(client)
            # Refused with a definite 503 (not taken): queued; meanwhile another party completes the run.
            self.proxy.faults.append(Fault("/complete", 503, times=4))
            with self.assertLogs("pipeline_status_client", logging.WARNING):
                self.assertTrue(client.complete_run(run_id, "COMPLETED", fullReportMarkdown="mine"))
            self.assertEqual((client.pending_count(run_id), client.completion_outcome(run_id)), (1, None))
            self.complete_elsewhere(run_id)
            with self.assertLogs("pipeline_status_client", logging.WARNING) as logs:
                self.assertTrue(client.flush(30))
            self.assertEqual([r.getMessage() for r in logs.records if r.levelno >= logging.WARNING], [  # type: ignore[attr-defined]
                f"Run {run_id}: {DUPLICATE}another /complete of this run was received first (another runner or process on the "
                "same run id, or the web app)"])
            self.assertEqual(client.completion_outcome(run_id), "duplicate")
            self.assertTrue(client.undelivered(run_id).all_delivered)
            # Every attempt answered: another party's /complete it is; queued by this client.
            self.assertEqual([(e.run_id, e.outcome, e.unanswered_attempt, e.earlier_process) for e in events],
                             [(run_id, "duplicate", False, False)])

            # Every attempt taken by the server without an answer, then queued: a new process on the
            # same outbox that delivers it cannot tell whose /complete came first, and says so.
            run_id = self.completed_stages(client)
            self.proxy.faults.append(Fault("/complete", 0, times=4, forwarded=True))
            with self.assertLogs("pipeline_status_client", logging.WARNING):
                self.assertTrue(client.complete_run(run_id, "COMPLETED", fullReportMarkdown="mine"))
                client.close()  # says the completion stays queued
            restarted = self.client(outbox_dir=outbox, background=False, on_queued_completion=events.append)
            with self.assertLogs("pipeline_status_client", logging.WARNING) as logs:
                self.assertTrue(restarted.flush(30))
            self.assertEqual([r.getMessage() for r in logs.records if r.levelno >= logging.WARNING], [  # type: ignore[attr-defined]
                f'Run {run_id}: The run\'s completion was answered "duplicate" after an earlier attempt of it got no definite '
                "answer, so that attempt may have been received: if it was, the app's onRunCompleted hook ran once with these "
                "results; if another /complete of this run (another runner or process on the same run id, or the web app) was "
                "received first, these results did not reach it"])
            self.assertEqual(restarted.completion_outcome(run_id), "duplicate")
            # The event says what the warning says: it may be its own, and an earlier process left it.
            self.assertEqual([(e.run_id, e.outcome, e.unanswered_attempt, e.earlier_process) for e in events[1:]],
                             [(run_id, "duplicate", True, True)])

    def test_a_lost_update_is_one_error_per_cause_with_the_fix_and_close_says_what_stays_undelivered(self) -> None:
        run_id = self.created_run()
        wrong = PrismaAPIClient(self.proxy.origin, "not-the-secret", retry=FAST)
        with self.assertLogs("pipeline_status_client", logging.DEBUG) as logs:
            self.assertEqual(report(wrong, run_id), [False] * 11)
            wrong.close()
            wrong.close()  # said once
        said = [r.getMessage() for r in logs.records if r.levelno >= logging.WARNING]  # type: ignore[attr-defined]
        self.assertEqual(len(said), 2, said)
        self.assertRegex(said[0], rf"^Run {run_id}: stage 1 PROCESSING was not delivered: HTTP 401 [^;]+; check that the runner's "
                                  r"secret \(WEBHOOK_SECRET\) matches the web app's\. Later updates of this run failing the same way "
                                  r"are logged at debug level$")
        self.assertEqual(said[1], f"Closed with 11 update(s) undelivered: run {run_id}: 11 failed")
        either = [r.getMessage() for r in logs.records if "was not delivered either" in r.getMessage()]  # type: ignore[attr-defined]
        self.assertEqual(len(either), 10)
        self.assertEqual(either[-1], f"Run {run_id}: completion COMPLETED was not delivered either: {said[0].split('delivered: ')[1].split(';')[0]}")

        with tempfile.TemporaryDirectory() as outbox:
            run_id = self.created_run()
            client = self.client(outbox_dir=outbox, background=False, retry=RetryPolicy(attempts=1))
            # Stage 1 PROCESSING is refused for good (a dead letter); the rest waits behind a 503.
            self.proxy.faults += [Fault(f"/{run_id}/stage-update", 400, times=1), Fault(f"/{run_id}/stage-update", 503, times=100)]
            with self.assertLogs("pipeline_status_client", logging.WARNING) as logs:
                self.assertEqual(report(client, run_id), [False] + [True] * 10)
                client.close()
            self.assertEqual(logs.records[-1].getMessage(),  # type: ignore[attr-defined]
                             f"Closed with 11 update(s) undelivered (outbox {outbox}): run {run_id}: 10 queued in the outbox, 1 dead-lettered")

    def test_progress_gets_increasing_seqs_and_the_newest_is_stored(self) -> None:
        run_id = self.created_run()
        client = self.client()
        self.assertTrue(client.mark_stage_processing(run_id, 1))
        for i in (1, 2, 3):
            self.assertTrue(client.report_progress(run_id, 1, current=i, total=3, message=f"batch {i}"))
        sent = [r.json()["progress"] for r in self.proxy.updates(run_id) if "progress" in r.json()]  # type: ignore[operator]
        seqs = [p["seq"] for p in sent]
        self.assertEqual(seqs, sorted(set(seqs)))
        self.assertEqual(len(seqs), 3)
        stage = client.get_status(run_id)["stages"][0]
        self.assertEqual(stage["progress"], {"seq": seqs[-1], "current": 3, "total": 3, "message": "batch 3"})
        self.assertTrue(client.heartbeat(run_id, 1, {"percent": 100.0}))
        self.assertEqual(client.get_status(run_id)["stages"][0]["progress"]["percent"], 100)

    def test_nan_and_infinity_reach_the_server_as_null_or_are_refused_in_progress(self) -> None:
        # Issue 20 item 5: one NaN in the results used to send nothing, so onRunCompleted never ran.
        run_id = self.created_run()
        client = self.client()
        self.assertTrue(client.mark_stage_processing(run_id, 1))
        # Progress with NaN is refused (as the TypeScript client refuses it); a heartbeat still goes.
        self.assertFalse(client.report_progress(run_id, 1, current=float("nan"), total=40, message="batch 37 of 40"))
        self.assertTrue(client.heartbeat(run_id, 1, {"current": 37, "total": 40, "percent": float("inf")}))
        self.assertTrue(client.report_progress(run_id, 1, current=37, total=40))
        stage = client.get_status(run_id)["stages"][0]
        self.assertEqual({k: v for k, v in stage["progress"].items() if k != "seq"}, {"current": 37, "total": 40})
        self.assertTrue(client.complete_run(run_id, opportunities=[{"score": float("nan")}, {"score": 0.5}], duration=float("-inf")))
        completion = [r for r in self.proxy.updates(run_id) if r.path.endswith("/complete")]
        self.assertEqual([r.status for r in completion], [200])
        sent = completion[0].json()
        self.assertEqual(sent["opportunities"], [{"score": None}, {"score": 0.5}])  # type: ignore[index]
        self.assertIsNone(sent["duration"])  # type: ignore[index]
        self.assertEqual(client.get_status(run_id)["run"]["status"], "COMPLETED")
        self.assertTrue(client.undelivered(run_id).all_delivered)

    def test_the_outbox_keeps_only_the_newest_pending_progress_per_stage(self) -> None:
        run_id = self.created_run()
        with tempfile.TemporaryDirectory() as outbox:
            self.proxy.faults.append(Fault(f"/{run_id}/stage-update", 503, times=100))
            client = self.client(outbox_dir=outbox, background=False, retry=RetryPolicy(attempts=1))
            with self.assertLogs("pipeline_status_client", logging.WARNING):
                self.assertTrue(client.mark_stage_processing(run_id, 1))
                for i in (1, 2, 3):
                    self.assertTrue(client.report_progress(run_id, 1, percent=i * 10.0, message=f"s1 {i}"))
                self.assertTrue(client.mark_stage_complete(run_id, 1, "one"))
                self.assertTrue(client.report_progress(run_id, 1, message="after the status change"))
            # PROCESSING, the newest progress, COMPLETED, then a report the status change keeps apart.
            self.assertEqual(client.pending_count(run_id), 4)
            self.proxy.faults.clear()
            self.assertTrue(client.flush(timeout=60))
            delivered = [r.json() for r in self.proxy.updates(run_id) if r.status == 200]
            self.assertEqual([(b["status"], b.get("progress", {}).get("message")) for b in delivered],  # type: ignore[union-attr]
                             [("PROCESSING", None), ("PROCESSING", "s1 3"), ("COMPLETED", None), ("PROCESSING", "after the status change")])

    def test_every_request_carries_the_trace_context_of_a_parameter_or_the_environment(self) -> None:
        from unittest import mock

        parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        run_id = self.created_run()
        client = self.client(traceparent=parent, tracestate="vendor=1")
        self.assertTrue(client.mark_stage_processing(run_id, 1))
        self.assertTrue(client.mark_stage_complete(run_id, 1, {"rows": 1}))
        client.get_status(run_id)
        sent = [r for r in self.proxy.records if run_id in r.path]
        self.assertGreaterEqual(len(sent), 3)
        self.assertEqual({(r.headers.get("traceparent"), r.headers.get("tracestate")) for r in sent}, {(parent, "vendor=1")})
        # From TRACEPARENT, when no parameter is given; an invalid one is ignored.
        other = "00-1af7651916cd43dd8448eb211c80319c-c7ad6b7169203331-00"
        with mock.patch.dict(os.environ, {"TRACEPARENT": other}):
            self.assertTrue(self.client().mark_stage_processing(run_id, 2))
        with mock.patch.dict(os.environ, {"TRACEPARENT": "not-a-traceparent"}):
            self.assertTrue(self.client().mark_stage_complete(run_id, 2))
        updates = self.proxy.updates(run_id)
        self.assertEqual([r.headers.get("traceparent") for r in updates[-2:]], [other, None])
        # Per request, from a callable (OpenTelemetry's inject).
        # The first goes to the restart rule's one read of the run (GET /status), a request like the others.
        calls = iter(["00-1bf7651916cd43dd8448eb211c80319c-c7ad6b7169203331-01",
                      "00-2af7651916cd43dd8448eb211c80319c-d7ad6b7169203331-01", "00-3af7651916cd43dd8448eb211c80319c-e7ad6b7169203331-01"])
        traced = self.client(trace_headers=lambda: {"traceparent": next(calls), "x-other": "dropped"})
        self.assertTrue(traced.mark_stage_processing(run_id, 3))
        self.assertTrue(traced.mark_stage_complete(run_id, 3))
        last = self.proxy.updates(run_id)[-2:]
        self.assertEqual([r.headers.get("traceparent")[3:7] for r in last], ["2af7", "3af7"])
        self.assertNotIn("x-other", last[0].headers)
        with self.assertRaises(ConfigurationError):
            self.client(traceparent="00-zz")

    def test_the_catalogue_check(self) -> None:
        run_id = new_run_id()
        client = self.client()
        client.create_run(run_id)
        self.assertEqual([s["stageNumber"] for s in client.check_catalogue(run_id) or []], [1, 2, 3, 4, 5])
        with self.assertRaises(CatalogueMismatchError) as refused:
            client.check_catalogue(run_id, 3)
        self.assertEqual((refused.exception.runner_stages, refused.exception.server_stages), (3, 5))
        # A client that did not create the run reads it from GET /status.
        self.assertEqual(len(self.client().check_catalogue(run_id) or []), 5)

    def test_runs_in_a_pipeline_with_tags_are_listed_and_counted(self) -> None:
        # Needs the server side of issue 24 (pipelines, tags, GET /runs).
        client = self.client()
        tag = f"batch-{uuid.uuid4().hex[:8]}"
        made = [client.create_run(new_run_id(), pipeline="report", tags=[tag], metadata={"n": n}) for n in range(3)]
        self.assertEqual([(run["pipeline"], run["tags"]) for run in made], [("report", [tag])] * 3)
        self.assertEqual(len(client.check_catalogue(made[0]["id"], 2) or []), 2)
        listed = list(client.list_runs(tag=tag, pipeline="report", limit=2))
        # Newest first; runs created in the same millisecond by id, descending.
        newest_first = sorted(made, key=lambda run: (run["createdAt"], run["id"]), reverse=True)
        self.assertEqual([run["id"] for run in listed], [run["id"] for run in newest_first])
        self.assertEqual([run["metadata"] for run in listed], [run["metadata"] for run in newest_first])
        self.assertEqual(len([r for r in self.proxy.records if r.path.startswith("/api/pipeline/runs?")]), 2)
        self.assertEqual(client.count_runs("status", tag=tag), {"PENDING": 3})
        with self.assertRaises(StatusHttpError) as refused:
            client.create_run(new_run_id(), pipeline="no-such-pipeline")
        self.assertEqual(refused.exception.status, 400)

    def restart_receiver(self) -> None:
        """Nothing to restart for a server whose state is in memory."""


    def test_a_runner_killed_while_its_first_processing_waited_in_the_outbox_restarts_the_stage_as_attempt_2(self) -> None:
        # The restart rule (restart_attempts.py, as runPipeline's): the stage is a new attempt whether the
        # outbox's redelivery of the killed process's PROCESSING lands after the restarted runner reads the
        # run or before.
        import signal
        import subprocess
        import sys
        from .support import PACKAGE
        child_code = """
import sys, time
from pipeline_status_client import PrismaAPIClient, RetryPolicy
origin, secret, directory, run_id = sys.argv[1:5]
client = PrismaAPIClient(origin, secret, outbox_dir=directory, background=False, retry=RetryPolicy(attempts=1))
client.mark_stage_processing(run_id, 1)
out = client.stream_output(run_id, 1)
out.write("the crashed process wrote this, ")
out.close()
print("queued", client.pending_count(run_id), flush=True)
time.sleep(60)  # killed here, mid-stage
"""
        for order in ("read-first", "redelivered-first"):
            with self.subTest(order=order):
                run_id = self.created_run()
                directory = tempfile.mkdtemp()
                faults = [Fault(f"/{run_id}/stage-update", 503, times=1000), Fault(f"/{run_id}/stages/1/output", 503, times=1000)]
                self.proxy.faults.extend(faults)
                child = subprocess.Popen([sys.executable, "-c", child_code, self.proxy.origin, SECRET, directory, run_id],
                                         env={**os.environ, "PYTHONPATH": PACKAGE}, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                try:
                    self.assertEqual(child.stdout.readline() if child.stdout else "", "queued 2\n")
                finally:
                    child.send_signal(signal.SIGKILL)
                    child.wait()
                    if child.stdout:
                        child.stdout.close()
                for fault in faults:
                    fault.times = 0
                direct = PrismaAPIClient(self.origin, SECRET)
                # Nothing of the killed process landed.
                self.assertEqual(direct.get_status(run_id)["stages"], [])
                restarted = self.client(outbox_dir=directory, background=False)
                self.addCleanup(restarted.close)
                if order == "redelivered-first":
                    self.assertTrue(restarted.flush(30))
                    self.assertEqual([(s["status"], s.get("attempt"), s.get("output")) for s in direct.get_status(run_id)["stages"]],
                                     [("PROCESSING", None, "the crashed process wrote this, ")])
                # read-first: the run is read (no stage yet) while the killed process's updates still wait.
                self.assertTrue(restarted.mark_stage_processing(run_id, 1))
                with restarted.stream_output(run_id, 1) as out:
                    out.write("the restarted process wrote this")
                self.assertTrue(restarted.flush(30))
                self.assertIsNone(out.stopped)
                stage = direct.get_status(run_id)["stages"][0]
                self.assertEqual((stage["status"], stage["attempt"], stage["maxAttempts"], stage["output"]),
                                 ("PROCESSING", 2, 2, "the restarted process wrote this"))
                self.assertTrue(restarted.mark_stage_complete(run_id, 1, "done"))
                self.assertTrue(restarted.flush(30))
                stage = direct.get_status(run_id)["stages"][0]
                self.assertEqual((stage["status"], stage["attempt"], stage["maxAttempts"], stage["output"]), ("COMPLETED", 2, 2, "done"))


    def test_an_earlier_process_s_final_status_dead_lettered_before_the_read_leaves_its_stage_processing(self) -> None:
        # The restart rule reads the earlier process's pending updates less those the outbox dead-lettered
        # before the run is read (restart_attempts.not_dead_lettered, as runPipeline's): the server never
        # stored them, so the stage is still the PROCESSING attempt 1 that process left, and runs again as 2.
        for final in ("COMPLETED", "FAILED"):
            with self.subTest(final=final), tempfile.TemporaryDirectory() as outbox:
                run_id = self.created_run()
                earlier = self.client(outbox_dir=outbox, background=False)
                self.assertTrue(earlier.mark_stage_processing(run_id, 1))
                fault = Fault(f"/{run_id}/stage-update", 503, times=100)
                self.proxy.faults.append(fault)
                with self.assertLogs("pipeline_status_client", logging.WARNING):
                    self.assertTrue(earlier.mark_stage_complete(run_id, 1, "one") if final == "COMPLETED"
                                    else earlier.mark_stage_failed(run_id, 1, "boom"))
                    earlier.close()
                self.assertEqual(earlier.pending_count(run_id), 1)
                fault.times = 0
                restarted = self.client(outbox_dir=outbox, background=False)
                try:
                    # The restarted client's outbox delivers it; the server refuses it for good.
                    self.proxy.faults.append(Fault(f"/{run_id}/stage-update", 400))
                    with self.assertLogs("pipeline_status_client", logging.ERROR):
                        self.assertTrue(restarted.flush(30))
                    self.assertEqual([d.what for d in restarted.dead_letters(run_id)], [f"stage 1 {final}"])
                    self.assertTrue(restarted.mark_stage_processing(run_id, 1))
                    stage = restarted.get_status(run_id)["stages"][0]
                    self.assertEqual((stage["status"], stage["attempt"], stage["maxAttempts"]), ("PROCESSING", 2, 2))
                finally:
                    restarted.close()

class MockServerTest(ServerTests, unittest.TestCase):
    """Against ``pipeline-status mock`` (mock-server/), in memory."""

    @classmethod
    def setUpClass(cls) -> None:
        require_servers()
        cls.server = start_mock()
        cls.origin = cls.server.origin

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()

    def setUp(self) -> None:
        self.proxy = Proxy(self.origin)

    def tearDown(self) -> None:
        self.proxy.close()


class ExpressExampleTest(ServerTests, unittest.TestCase):
    """Against examples/express on PostgreSQL (PSC_TEST_DATABASE_URL) or PGlite; the restart
    test stops the example and starts it again on the same database."""

    @classmethod
    def setUpClass(cls) -> None:
        require_servers(express=True)
        cls.database = ExpressDatabase()
        cls.server = start_express(cls.database)
        cls.origin = cls.server.origin

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
        cls.database.cleanup()

    def setUp(self) -> None:
        self.proxy = Proxy(self.origin)

    def tearDown(self) -> None:
        self.proxy.close()

    def restart_receiver(self) -> None:
        cls = type(self)
        cls.server.stop()
        cls.server = start_express(cls.database, port=cls.server.port)
        cls.origin = cls.server.origin


class SignedExpressTest(unittest.TestCase):
    """Against the Express adapter configured with a signing secret only (docs/security.md):
    every request, the status read included, must carry a valid route-bound signature."""

    SIGNING_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"

    @classmethod
    def setUpClass(cls) -> None:
        require_servers(express=True)
        cls.database = ExpressDatabase()
        cls.server = start_express(cls.database, signing_secret=cls.SIGNING_SECRET)

    @classmethod
    def tearDownClass(cls) -> None:
        cls.server.stop()
        cls.database.cleanup()

    def setUp(self) -> None:
        self.proxy = Proxy(self.server.origin)

    def tearDown(self) -> None:
        self.proxy.close()

    def test_a_signing_only_runner_reports_and_reads_a_run(self) -> None:
        client = PrismaAPIClient(self.proxy.origin, "", signing_secret=self.SIGNING_SECRET, retry=FAST)
        run_id = f"run:{uuid.uuid4().hex[:8]}"  # a ':' is signed as it is, whatever the URL says
        self.assertEqual(client.create_run(run_id)["id"], run_id)
        self.proxy.faults.append(Fault("/stage-update", 503, times=1))
        self.assertEqual(report(client, run_id), [True] * 11)
        self.assertEqual(client.get_status(run_id)["run"]["status"], "COMPLETED")
        writes = [r for r in self.proxy.records if r.method == "POST"]
        for record in writes:
            self.assertNotIn("x-webhook-secret", record.headers)
            route = record.path.split("/api/pipeline/", 1)[1]
            self.assertEqual(record.headers["webhook-id"], f"POST {urllib_unquote(route)} {record.headers['idempotency-key']}")
            self.assertRegex(record.headers["webhook-signature"], r"^v1,[A-Za-z0-9+/]+=*$")
        retried = [r for r in writes if r.path.endswith("/stage-update")][:2]
        self.assertEqual([r.status for r in retried], [503, 200])
        self.assertEqual(retried[0].headers["webhook-id"], retried[1].headers["webhook-id"])
        read = [r for r in self.proxy.records if r.method == "GET"][-1]
        self.assertTrue(read.headers["webhook-id"].startswith(f"GET {run_id}/status "))
        # The plain secret alone is not enough for this server, reads included.
        with self.assertRaises(StatusHttpError) as refused:
            PrismaAPIClient(self.server.origin, SECRET).get_status(run_id)
        self.assertEqual(refused.exception.status, 401)


def urllib_unquote(text: str) -> str:
    import urllib.parse

    return urllib.parse.unquote(text)


if __name__ == "__main__":
    unittest.main()
