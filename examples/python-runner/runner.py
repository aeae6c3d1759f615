"""A pipeline runner in plain Python that speaks the pipeline-status contract with `requests`.

It sends exactly the payloads the original Python runner sent, so any server that implements
the contract (the package's handlers in a Next.js or Express app, or `pipeline-status mock`)
stores them. Run it against the mock server:

    npx pipeline-status mock --port 4010 --secret dev-secret &
    FRONTEND_WEBHOOK_URL=http://127.0.0.1:4010 WEBHOOK_SECRET=dev-secret python3 runner.py [run_id]

It exits 0 when the run ends COMPLETED, as read back from GET /status.

Like `PrismaAPIClient`, it never loses a stage's status because of its output: characters
PostgreSQL cannot store (NUL, lone surrogates) are replaced with U+FFFD before sending, and an
output the server refuses as too large (413) is cut to the limit the problem states
(`maxBytes`), ended with TRUNCATION_MARKER, and sent again as a new update (new Idempotency-Key).
"""

import errno
import json
import os
import re
import sys
import time
import uuid
from datetime import datetime, timezone

import requests

BASE_PATH = "/api/pipeline"
# Ends an output cut to fit the server's body limit; the same marker as the TypeScript client's.
TRUNCATION_MARKER = "\n\u2026[truncated by pipeline-status-sdk]"
# NUL, and any surrogate code point (in a Python str a surrogate is always unpaired).
UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
STAGES = [
    "Input Processing",
    "Signal Amplification",
    "General Translation",
    "Brand Contextualization",
    "Opportunity Generation",
]
RETRYABLE = {408, 429, 500, 502, 503, 504}


class PipelineStatusClient:
    """Reports stage status; like the original client, mark_* return True/False and never raise."""

    def __init__(self, base_url=None, secret=None, timeout=10.0, attempts=4):
        self.base_url = (base_url or os.environ.get("FRONTEND_WEBHOOK_URL", "")).rstrip("/")
        # The URL as the demo and the Express example print it ends with the base path already.
        if self.base_url.endswith(BASE_PATH):
            self.base_url = self.base_url[: -len(BASE_PATH)]
        self.secret = secret or os.environ.get("WEBHOOK_SECRET", "")
        if not self.base_url or not self.secret:
            raise SystemExit("Set FRONTEND_WEBHOOK_URL and WEBHOOK_SECRET")
        self.timeout = timeout
        self.attempts = attempts
        self.session = requests.Session()
        # (stage number, what was done) for each output changed so that its status could be stored.
        self.altered_outputs = []
        # Updates that were not delivered, as text.
        self.undelivered = []

    def _request(self, method, path, body=None):
        """Sends one update: every attempt with the same Idempotency-Key and the same bytes."""
        headers = {"X-Webhook-Secret": self.secret, "Idempotency-Key": str(uuid.uuid4())}
        data = None
        if body is not None:
            # Serialised here, so the size the server counts is the size we can measure.
            data = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        for attempt in range(1, self.attempts + 1):
            retry_after = None
            try:
                response = self.session.request(
                    method, f"{self.base_url}{BASE_PATH}{path}", data=data, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as error:
                if attempt == self.attempts:
                    raise
                cause = network_cause(error)
            else:
                if response.status_code not in RETRYABLE or attempt == self.attempts:
                    return response
                problem = problem_of(response)
                cause = f"HTTP {response.status_code}" + (f" {problem['code']}" if problem.get("code") else "")
                header = response.headers.get("Retry-After", "")
                retry_after = float(header) if header.strip().isdigit() else None
            delay = retry_after if retry_after is not None else min(2.0, 0.2 * 2**attempt)
            print(f"  {method} {path} failed ({cause}); retry {attempt} of {self.attempts - 1} in {delay:.2f} s", file=sys.stderr)
            time.sleep(delay)
        raise RuntimeError("unreachable")

    def create_run(self, run_id=None):
        response = self._request("POST", "/runs", {"id": run_id} if run_id else {})
        response.raise_for_status()
        return response.json()["run"]["id"]

    def _update(self, run_id, stage_number, status, output="", completed=False):
        storable, replaced = UNSTORABLE.subn("\ufffd", output)
        if replaced:
            self._altered(stage_number, f"{replaced} character(s) PostgreSQL cannot store replaced with U+FFFD")
        body = {
            "stageNumber": stage_number,
            "stageName": STAGES[stage_number - 1],
            "status": status,
            "output": storable,
        }
        if completed:
            body["completedAt"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        while True:
            try:
                response = self._request("POST", f"/{run_id}/stage-update", body)
            except requests.RequestException as error:
                return self._not_delivered(stage_number, status, f"{network_cause(error)}: {error}")
            if response.status_code == 413:
                # Too large: cut the output to the limit the problem states; the cut body is a new
                # update, so it goes out with a new Idempotency-Key (the next _request call).
                sent = len(encode(body))
                limit = problem_of(response).get("maxBytes") or sent // 2
                fitted = fit_output(body, limit)
                if fitted is not None and len(encode(fitted)) < sent:
                    original = len(body["output"].encode("utf-8"))
                    kept = len(fitted["output"].encode("utf-8"))
                    self._altered(stage_number, f"output truncated from {original} to {kept} bytes to fit the server's body limit ({limit} bytes)")
                    body = fitted
                    continue
            if response.status_code != 200:
                problem = problem_of(response)
                return self._not_delivered(stage_number, status, f"{response.status_code} {problem.get('code')} {problem.get('detail', '')}")
            return True

    def _altered(self, stage_number, what):
        self.altered_outputs.append((stage_number, what))
        print(f"  warning: stage {stage_number} {what}", file=sys.stderr)

    def _not_delivered(self, stage_number, status, why):
        self.undelivered.append(f"stage {stage_number} {status}: {why}")
        print(f"  stage {stage_number} {status} not delivered: {why}", file=sys.stderr)
        return False

    def initialize_pipeline_stages(self, run_id):
        return self._update(run_id, 1, "PROCESSING")

    def mark_stage_processing(self, run_id, stage_number):
        return self._update(run_id, stage_number, "PROCESSING")

    def mark_stage_complete(self, run_id, stage_number, output):
        text = output if isinstance(output, str) else json.dumps(output)
        return self._update(run_id, stage_number, "COMPLETED", text, completed=True)

    def mark_stage_failed(self, run_id, stage_number, error_message):
        return self._update(run_id, stage_number, "FAILED", error_message, completed=True)

    def complete_run(self, run_id, status, **results):
        body = {"status": status, "completedAt": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ"), **results}
        if isinstance(body.get("error"), str):
            body["error"] = UNSTORABLE.sub("\ufffd", body["error"])
        response = self._request("POST", f"/{run_id}/complete", body)
        if response.status_code != 200:
            self.undelivered.append(f"completion: {response.status_code} {problem_of(response).get('code')}")
        return response.status_code == 200

    def get_status(self, run_id):
        response = self._request("GET", f"/{run_id}/status")
        response.raise_for_status()
        return response.json()


def encode(body):
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def fit_output(body, limit):
    """The body with its output cut so the whole JSON is at most `limit` bytes, ended with
    TRUNCATION_MARKER once; None when even the marker alone does not fit."""
    original = body["output"]
    if original.endswith(TRUNCATION_MARKER):
        original = original[: -len(TRUNCATION_MARKER)]
    low, high = 0, len(original)
    if len(encode({**body, "output": TRUNCATION_MARKER})) > limit:
        return None
    # The longest prefix that fits (JSON escaping makes the size grow with the prefix only).
    while low < high:
        middle = (low + high + 1) // 2
        if len(encode({**body, "output": original[:middle] + TRUNCATION_MARKER})) <= limit:
            low = middle
        else:
            high = middle - 1
    return {**body, "output": original[:low] + TRUNCATION_MARKER}


def problem_of(response):
    if not response.headers.get("Content-Type", "").startswith("application/problem+json"):
        return {}
    try:
        return response.json()
    except ValueError:
        return {}


def network_cause(error):
    """The system error behind a failed request (ECONNREFUSED, ECONNRESET), else its class name."""
    seen = set()
    pending = [error]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, OSError) and current.errno in errno.errorcode:
            return errno.errorcode[current.errno]
        pending.extend([getattr(current, "reason", None), current.__cause__, current.__context__])
        pending.extend(arg for arg in getattr(current, "args", ()) if isinstance(arg, BaseException))
    return error.__class__.__name__


def run_stage(number):
    time.sleep(float(os.environ.get("STAGE_DELAY_MS", "100")) / 1000)
    if number == 1:
        return {"inputs": ["survey.csv"], "rows": 1280}
    if number == 5:
        return "# Opportunities\n\n1. **Pastry pop-ups**\n"
    return {"stage": number, "signals": [{"id": 1, "text": "Gen Z wants \u00e9clairs"}]}


def main():
    client = PipelineStatusClient()
    run_id = client.create_run(sys.argv[1] if len(sys.argv) > 1 else None)
    started = time.monotonic()
    client.initialize_pipeline_stages(run_id)
    outputs = []
    for number, name in enumerate(STAGES, start=1):
        if number > 1:
            client.mark_stage_processing(run_id, number)
        print(f"  stage {number} {name}: PROCESSING", flush=True)
        try:
            output = run_stage(number)
        except Exception as error:  # a stage failure ends the run, as in the original runner
            client.mark_stage_failed(run_id, number, str(error))
            client.complete_run(run_id, "FAILED", error=str(error))
            break
        outputs.append(output)
        client.mark_stage_complete(run_id, number, output)
        print(f"  stage {number} {name}: COMPLETED", flush=True)
    else:
        client.complete_run(
            run_id, "COMPLETED", duration=round(time.monotonic() - started, 3), fullReportMarkdown=outputs[-1]
        )

    status = client.get_status(run_id)
    print(f"GET /status: run {run_id} is {status['run']['status']}")
    for stage in status["stages"]:
        print(f"  {stage['stageNumber']}. {stage['stageName']}: {stage['status']}")
    for number, what in client.altered_outputs:
        print(f"  altered: stage {number} {what}")
    print(f"every update delivered: {'no' if client.undelivered else 'yes'}")
    for what in client.undelivered:
        print(f"  not delivered: {what}")
    return 0 if status["run"]["status"] == "COMPLETED" and not client.undelivered else 1


if __name__ == "__main__":
    sys.exit(main())
