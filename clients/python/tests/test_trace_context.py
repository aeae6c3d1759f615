"""Unit tests of W3C Trace Context in the client (trace_context.py): the traceparent rule with the
W3C recommendation's examples, and a ``trace_headers`` callable that never fails a request."""
import logging
import os
import unittest
from typing import Any, Callable, Dict, List
from unittest import mock

from pipeline_status_client import ConfigurationError, PrismaAPIClient
from pipeline_status_client.trace_context import resolve_trace_headers, traceparent_problem

# https://www.w3.org/TR/trace-context/#examples-of-http-traceparent-headers
VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
NOT_SAMPLED = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"


class TraceparentRuleTest(unittest.TestCase):
    def test_the_w3c_examples_and_lowercase_hex_only(self) -> None:
        self.assertIsNone(traceparent_problem(VALID))
        self.assertIsNone(traceparent_problem(NOT_SAMPLED))
        for upper in (VALID.upper(), "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"):
            self.assertRegex(traceparent_problem(upper) or "", "not a W3C traceparent")
        for bad in ("00-4bf92f3577b34da6-00f067aa0ba902b7-01", "00-zz", "", VALID + "-extra", VALID + "\n",
                    "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"):
            self.assertRegex(traceparent_problem(bad) or "", "not a W3C traceparent", bad)

    def test_all_zero_ids_are_named_as_such(self) -> None:
        self.assertEqual(traceparent_problem("00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
                         "its trace id is all zeros (invalid per W3C Trace Context)")
        self.assertEqual(traceparent_problem("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"),
                         "its parent id is all zeros (invalid per W3C Trace Context)")

    def test_a_later_version_is_read_by_its_first_55_characters(self) -> None:
        self.assertIsNone(traceparent_problem("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
        self.assertIsNone(traceparent_problem("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-will-be-like"))
        self.assertIsNotNone(traceparent_problem("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.x"))
        self.assertIsNotNone(traceparent_problem("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-x\r\ny: z"))

    def test_the_parameter_raises_and_the_environment_warns(self) -> None:
        with self.assertRaisesRegex(ConfigurationError, "all zeros"):
            resolve_trace_headers("00-00000000000000000000000000000000-00f067aa0ba902b7-01", None, None, print)
        with self.assertRaisesRegex(ConfigurationError, "not a W3C traceparent"):
            resolve_trace_headers(VALID.upper(), None, None, print)
        warnings: List[str] = []
        with mock.patch.dict(os.environ, {"TRACEPARENT": VALID.upper()}):
            self.assertIsNone(resolve_trace_headers(None, None, None, warnings.append))
        with mock.patch.dict(os.environ, {"TRACEPARENT": "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01"}):
            self.assertIsNone(resolve_trace_headers(None, None, None, warnings.append))
        self.assertEqual(len(warnings), 2)
        self.assertIn("not a W3C traceparent", warnings[0])
        self.assertIn("parent id is all zeros", warnings[1])


def _raises() -> Dict[str, str]:
    raise RuntimeError("no tracer")


class TraceHeadersCallableTest(unittest.TestCase):
    def per_request(self, trace_headers: Callable[[], Any]) -> "tuple[Callable[[], Dict[str, str]], List[str]]":
        warnings: List[str] = []
        resolved = resolve_trace_headers(None, None, trace_headers, warnings.append)
        assert resolved is not None
        return resolved, warnings

    def test_a_good_callable_gives_its_trace_headers_only(self) -> None:
        headers, warnings = self.per_request(lambda: {"TraceParent": VALID, "tracestate": "a=1", "x-other": "dropped"})
        self.assertEqual(headers(), {"traceparent": VALID, "tracestate": "a=1"})
        self.assertEqual(warnings, [])

    def test_each_failure_gives_no_headers_and_one_warning_per_cause(self) -> None:
        cases: List[Any] = [
            (_raises, "raised RuntimeError: no tracer"),
            (lambda: None, "returned NoneType, not a mapping"),
            (lambda: {"traceparent": VALID, "tracestate": "a=1\r\nx-injected: 1"}, "without CR, LF or NUL"),
            (lambda: {"traceparent": VALID + "\n"}, "without CR, LF or NUL"),
            (lambda: {"traceparent": 42}, "not a one-line string"),
            (lambda: {"traceparent": VALID.upper(), "tracestate": "a=1"}, "not a W3C traceparent"),
            (lambda: {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}, "trace id is all zeros"),
        ]
        for trace_headers, cause in cases:
            headers, warnings = self.per_request(trace_headers)
            self.assertEqual((headers(), headers()), ({}, {}), cause)
            self.assertEqual(len(warnings), 1, cause)
            self.assertIn(cause, warnings[0])
            self.assertIn("requests go out without trace headers", warnings[0])

    def test_the_client_sends_without_trace_headers_and_its_bool_methods_do_not_raise(self) -> None:
        sent: List[Dict[str, str]] = []

        def send(request: Any) -> Dict[str, Any]:
            sent.append(client._transport.headers(request))
            return {"runId": "run_1", "stageNumber": 1, "status": "PROCESSING", "applied": True}

        for trace_headers in (_raises, lambda: None, lambda: {"traceparent": "00-x\r\ny"}):
            client = PrismaAPIClient("http://127.0.0.1:9", "s", trace_headers=trace_headers)
            with mock.patch.object(client._transport, "send", side_effect=send), \
                    self.assertLogs("pipeline_status_client", logging.WARNING) as logs:
                client.mark_stage_processing("run_1", 1)
                client.mark_stage_processing("run_1", 1)
            self.assertEqual(sum("trace_headers" in line for line in logs.output), 1)
        self.assertTrue(sent)
        self.assertTrue(all("traceparent" not in h for h in sent))


if __name__ == "__main__":
    unittest.main()
