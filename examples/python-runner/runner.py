"""A pipeline runner in Python that reports with `pipeline_status_client.PrismaAPIClient`.

The calls are the original Python runner's (`initialize_pipeline_stages`, `mark_stage_processing`,
`mark_stage_complete`, `mark_stage_failed`, each returning True/False): an existing runner
changes its import line and gets retries with one idempotency key, Standard Webhooks signing
(`WEBHOOK_SIGNING_SECRET`) and, with `PIPELINE_STATUS_OUTBOX_DIR`, a durable outbox that keeps
updates while the web app is down. It also uses runner control: it checks the server's stage
catalogue before starting, sends heartbeats while a stage runs (`HEARTBEAT_INTERVAL_S`, default
10), and stops when the web app cancels the run (or the stale-run sweeper fails it). Run it
against the mock server:

    npx pipeline-status mock --port 4010 --secret dev-secret &
    FRONTEND_WEBHOOK_URL=http://127.0.0.1:4010 WEBHOOK_SECRET=dev-secret python3 runner.py [run_id]

It prints the outputs the client altered so that their stage's status is stored, and whether
every update was delivered; it exits 0 when every update was delivered and the run ends
COMPLETED, as read back from GET /status; 1 otherwise, and 2 when the run was finished elsewhere
(cancelled by the web app).
"""

import os
import sys
import time
from pathlib import Path

try:
    from pipeline_status_client import PrismaAPIClient
except ImportError:  # run from a checkout without `pip install ./clients/python`
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "clients" / "python"))
    from pipeline_status_client import PrismaAPIClient

STAGES = [
    "Input Processing",
    "Signal Amplification",
    "General Translation",
    "Brand Contextualization",
    "Opportunity Generation",
]


def run_stage(number):
    time.sleep(float(os.environ.get("STAGE_DELAY_MS", "100")) / 1000)
    if number == 1:
        return {"inputs": ["survey.csv"], "rows": 1280}
    if number == 5:
        return "# Opportunities\n\n1. **Pastry pop-ups**\n"
    return {"stage": number, "signals": [{"id": 1, "text": "Gen Z wants \u00e9clairs"}]}


def main():
    # FRONTEND_WEBHOOK_URL, WEBHOOK_SECRET (and PIPELINE_STATUS_OUTBOX_DIR)
    client = PrismaAPIClient(heartbeat_interval=float(os.environ.get("HEARTBEAT_INTERVAL_S", "10")))
    # The web app usually creates the run and passes its id; the example creates it itself.
    run_id = client.create_run(sys.argv[1] if len(sys.argv) > 1 else None)["id"]
    client.check_catalogue(run_id, len(STAGES))  # CatalogueMismatchError when the server has other stages
    started = time.monotonic()
    client.initialize_pipeline_stages(run_id)
    outputs = []
    for number, name in enumerate(STAGES, start=1):
        finished = client.run_finished(run_id)
        if finished:  # the web app cancelled the run, or the sweeper failed it: stop, report nothing more
            print(f"  run {run_id} was {finished['status']} elsewhere ({finished.get('error')}); stopping", flush=True)
            client.close()
            return 2
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

    # With an outbox, what the web app did not take yet is still on disk: try it once more, read
    # the run back while the client is open (a closed client sends nothing), then close it.
    client.flush(timeout=30)
    status = client.get_status(run_id)
    client.close(flush_timeout=30)
    # The run summary: outputs changed so that their status is stored, and what was not delivered.
    for altered in client.altered_outputs:
        print(f"  stage {altered.stage_number} output altered: {altered.description}")
    undelivered = client.undelivered(run_id)
    if not undelivered.all_delivered:
        if undelivered.queued:
            print(f"  {undelivered.queued} update(s) still queued in {client.outbox.directory}", file=sys.stderr)
        for letter in undelivered.dead_letters:
            print(f"  dead letter: {letter.what}: {letter.reason}", file=sys.stderr)
        for line in undelivered.failed:
            print(f"  not delivered: {line}", file=sys.stderr)
        print("Not every update was delivered", file=sys.stderr)
        return 1
    print("Every update was delivered")
    print(f"GET /status: run {run_id} is {status['run']['status']}")
    for stage in status["stages"]:
        print(f"  {stage['stageNumber']}. {stage['stageName']}: {stage['status']}")
    return 0 if status["run"]["status"] == "COMPLETED" else 1


if __name__ == "__main__":
    sys.exit(main())
