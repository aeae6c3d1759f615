"""Parity with the TypeScript client: a closed client sends nothing (calls that return data raise
``ClientClosedError``, those that return ``True``/``False`` return ``False`` with one error line,
as the TypeScript ``mark*`` methods resolve ``false``), and a chunk cascade in the outbox (the
stage's later output chunks queued behind one refused for good are dead-lettered unsent, with one
line for them). Against the in-process fake server of ``test_stream_output``."""
import json
import logging
import tempfile
import unittest
from typing import Any

from pipeline_status_client import ClientClosedError, PipelineStatusError, PrismaAPIClient, RetryPolicy

from .test_stream_output import FakeServer, Records, problem

CLOSED = "The PrismaAPIClient is closed"
REFUSED = "POST /api/pipeline/r/stages/1/output answered 400 invalid_body"


class _WithServer(unittest.TestCase):
    def setUp(self) -> None:
        self.server = FakeServer()
        self.addCleanup(self.server.stop)
        self.records = Records()
        self.logger = logging.getLogger(f"closed-cascade-test-{id(self)}")
        self.logger.propagate = False
        self.logger.addHandler(self.records)
        self.logger.setLevel(logging.DEBUG)

    def client(self, **options: Any) -> PrismaAPIClient:
        client = PrismaAPIClient(self.server.origin, "secret", logger=self.logger, retry=RetryPolicy(attempts=1), **options)
        self.addCleanup(client.close)
        return client

    def errors(self) -> list:
        return [message for level, message in self.records.messages if level == "ERROR"]


class ClosedClientTest(_WithServer):
    def test_sends_nothing_after_close_raising_where_the_typescript_client_throws(self) -> None:
        client = self.client(outbox_dir=tempfile.mkdtemp(prefix="closed-"), background=False)
        self.assertTrue(client.mark_stage_processing("r", 1))
        client.close()
        sent = len(self.server.requests)
        self.records.messages.clear()

        # The reads and the run creation raise, as the TypeScript client's throw.
        for call in (lambda: client.get_status("r"), lambda: client.create_run("r"), lambda: client.count_runs("status"),
                     lambda: list(client.list_runs()), lambda: client.check_catalogue("r")):
            with self.assertRaises(ClientClosedError) as raised:
                call()
            self.assertEqual(str(raised.exception), CLOSED)
            self.assertIsInstance(raised.exception, PipelineStatusError)
        # The updates return False (never raise, as documented), each with one error line.
        self.assertFalse(client.mark_stage_complete("r", 1, "one"))
        self.assertFalse(client.mark_stage_processing("r", 2))
        self.assertFalse(client.report_progress("r", 2, percent=50))
        self.assertFalse(client.complete_run("r", "COMPLETED"))
        self.assertFalse(client.heartbeat("r", 2))
        stream = client.stream_output("r", 2, flush_interval=0.01)
        stream.write("text")
        self.assertFalse(stream.close())
        self.assertTrue(client.flush(timeout=1))  # nothing waits, and nothing is sent

        self.assertEqual(self.server.requests[sent:], [])
        self.assertEqual(self.errors()[:4], [
            f"Run r: stage 1 COMPLETED not sent: {CLOSED}",
            f"Run r: stage 2 PROCESSING not sent: {CLOSED}",
            f"Run r: stage 2 progress not sent: {CLOSED}",
            f"Run r: completion COMPLETED not sent: {CLOSED}",
        ])
        self.assertIn(f"chunk 0 was not delivered: {CLOSED}", stream.stopped or "")
        # The four updates and the stream's chunk: a heartbeat is no update (never queued, never counted).
        self.assertEqual(len(client.undelivered("r").failed), 5)

    def test_a_stage_is_not_run_by_a_closed_client(self) -> None:
        # A stage whose PROCESSING and COMPLETED could not be sent would run unreported: refused at the call.
        client = self.client()
        client.close()
        ran = []
        with self.assertRaises(ClientClosedError):
            client.run_stage_with_retries("r", 1, lambda: ran.append(1))
        self.assertEqual(ran, [])
        self.assertEqual(self.server.requests, [])


class ChunkCascadeTest(_WithServer):
    def test_later_chunks_behind_a_dead_lettered_one_are_dead_lettered_unsent_with_one_line(self) -> None:
        down = {"value": True}
        refuse_first = {"value": False}

        def answer(path: str, body: Any) -> Any:
            if path.endswith("/output"):
                if down["value"]:
                    return problem("database_unavailable", 503)
                if refuse_first["value"]:
                    refuse_first["value"] = False
                    return problem("invalid_body", 400)
            return None

        self.server.answer = answer
        outbox = tempfile.mkdtemp(prefix="cascade-")
        client = self.client(outbox_dir=outbox, background=False)
        self.assertTrue(client.mark_stage_processing("r", 1))
        # One write of three chunks' worth: cut into chunks 0, 1 and 2 of 64 KiB, queued in order (503).
        with client.stream_output("r", 1) as out:
            out.write("x" * (3 * 64 * 1024))
        self.assertTrue(client.mark_stage_complete("r", 1, "done"))
        self.assertEqual(client.pending_count("r"), 4)

        down["value"] = False
        refuse_first["value"] = True
        sent = len(self.server.requests)
        self.records.messages.clear()
        self.assertTrue(client.flush(timeout=30))

        # Only chunk 0 was sent again; the stage's COMPLETED after the chunks was delivered.
        self.assertEqual([line.split(" ")[:3] for line in self.server.lines(sent)], [["output", "1", "#0"], ["stage-update", "1", "COMPLETED"]])
        letters = client.dead_letters("r")
        self.assertEqual([(json.loads(letter.body or b"{}")["seq"], letter.reason.split(":")[0]) for letter in letters], [
            (0, REFUSED),
            (1, "an earlier chunk of this stage's output was dead-lettered"),
            (2, "an earlier chunk of this stage's output was dead-lettered"),
        ])
        errors = self.errors()
        self.assertEqual(len(errors), 2, errors)
        self.assertTrue(errors[0].startswith(f"Run r: stage 1 output chunk 0 dead-lettered: {REFUSED}"), errors[0])
        self.assertEqual(errors[1], (
            "Run r: 2 later chunks of the streamed output of stage 1 (chunks 1 to 2) dead-lettered unsent, because stage 1 output "
            f"chunk 0 was ({letters[0].reason}): the server applies a stage's chunks only "
            f"in order, so none after a missing one can be stored. Kept in {client.outbox.path if client.outbox else ''} "
            "(client.dead_letters()); the output sent with the stage's COMPLETED replaces the streamed text, so only the text "
            "streamed so far is lost: fix the cause of chunk 0's refusal (logged above)"))
        self.assertEqual(len(client.undelivered("r").dead_letters), 3)


if __name__ == "__main__":
    unittest.main()
