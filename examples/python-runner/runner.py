"""A pipeline runner in plain Python that speaks the pipeline-status contract with `requests`.

It sends exactly the payloads the original Python runner sent, so any server that implements
the contract (the package's handlers in a Next.js or Express app, or `pipeline-status mock`)
stores them. Run it against the mock server:

    npx pipeline-status mock --port 4010 --secret dev-secret &
    FRONTEND_WEBHOOK_URL=http://127.0.0.1:4010 WEBHOOK_SECRET=dev-secret python3 runner.py [run_id]

It exits 0 when the run ends COMPLETED, as read back from GET /status.
"""

import json
import os
import sys
import time
import uuid
from datetime import datetime, timezone

import requests

BASE_PATH = "/api/pipeline"
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
        self.secret = secret or os.environ.get("WEBHOOK_SECRET", "")
        if not self.base_url or not self.secret:
            raise SystemExit("Set FRONTEND_WEBHOOK_URL and WEBHOOK_SECRET")
        self.timeout = timeout
        self.attempts = attempts
        self.session = requests.Session()

    def _request(self, method, path, body=None):
        headers = {"X-Webhook-Secret": self.secret, "Idempotency-Key": str(uuid.uuid4())}
        for attempt in range(1, self.attempts + 1):
            try:
                response = self.session.request(
                    method, f"{self.base_url}{BASE_PATH}{path}", json=body, headers=headers, timeout=self.timeout
                )
            except requests.RequestException as error:
                if attempt == self.attempts:
                    raise
                print(f"  retrying after {error.__class__.__name__}", file=sys.stderr)
            else:
                if response.status_code not in RETRYABLE or attempt == self.attempts:
                    return response
                time.sleep(float(response.headers.get("Retry-After", "0") or 0))
            time.sleep(min(2.0, 0.2 * 2**attempt))
        raise RuntimeError("unreachable")

    def create_run(self, run_id=None):
        response = self._request("POST", "/runs", {"id": run_id} if run_id else {})
        response.raise_for_status()
        return response.json()["run"]["id"]

    def _update(self, run_id, stage_number, status, output="", completed=False):
        body = {
            "stageNumber": stage_number,
            "stageName": STAGES[stage_number - 1],
            "status": status,
            "output": output,
        }
        if completed:
            body["completedAt"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        try:
            response = self._request("POST", f"/{run_id}/stage-update", body)
        except requests.RequestException as error:
            print(f"  stage {stage_number} {status} not delivered: {error}", file=sys.stderr)
            return False
        if response.status_code != 200:
            problem = response.json() if response.headers.get("Content-Type", "").startswith("application/problem+json") else {}
            print(f"  stage {stage_number} {status} refused: {response.status_code} {problem.get('code')} {problem.get('detail', '')}", file=sys.stderr)
            return False
        return True

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
        response = self._request("POST", f"/{run_id}/complete", body)
        return response.status_code == 200

    def get_status(self, run_id):
        response = self._request("GET", f"/{run_id}/status")
        response.raise_for_status()
        return response.json()


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
    return 0 if status["run"]["status"] == "COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
