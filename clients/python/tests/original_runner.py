"""The original runner's exact call sequence, as a separate process, with only its import line
changed. Used by the restart tests: ``PSC_MODE=report`` reports the whole run (the server may
be down) and exits; ``PSC_MODE=flush`` only delivers what an earlier process queued. Prints one
JSON line with the results."""
import json
import os
import sys

from pipeline_status_client import PrismaAPIClient, RetryPolicy

OUTPUTS = {
    1: {"inputs": ["survey.csv"], "rows": 1280},
    2: {"signals": [{"id": 1, "text": "Gen Z wants \u00e9clairs"}]},
    3: {"translated": True, "score": 5.0},
    4: "## Brand\n\nPastry, but *premium*.",
    5: "# Opportunities\n\n1. **Pastry pop-ups**\n",
}


def report(client: PrismaAPIClient, run_id: str) -> list:
    """initialize, then per stage processing (from stage 2) and complete, then complete_run."""
    results = [client.initialize_pipeline_stages(run_id)]
    for number in range(1, 6):
        if number > 1:
            results.append(client.mark_stage_processing(run_id, number))
        results.append(client.mark_stage_complete(run_id, number, OUTPUTS[number]))
    results.append(client.complete_run(run_id, "COMPLETED", duration=12.5, fullReportMarkdown=OUTPUTS[5]))
    return results


def main() -> int:
    run_id = os.environ["PSC_RUN_ID"]
    client = PrismaAPIClient(retry=RetryPolicy(attempts=2, base_delay=0.05), background=False)
    if os.environ.get("PSC_MODE") == "flush":
        empty = client.flush(timeout=60)
        print(json.dumps({"empty": empty, "pending": client.pending_count()}))
        return 0 if empty else 1
    results = report(client, run_id)
    print(json.dumps({"results": results, "pending": client.pending_count(run_id)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
