"""The one rule of a restarted runner, as the TypeScript client's (src/client/restart-attempts.ts):
a stage an earlier process left PROCESSING runs again as a new attempt, the stage's attempt as the
earlier process left it plus one. "Left PROCESSING" is read from two places, because an earlier
process's reports may not have landed yet: the run as the server holds it (``GET /status``) and
the earlier process's updates still waiting in the outbox, as they were when this client opened it
(they are delivered before any of this process's updates of the run, in order), less those the
outbox has dead-lettered since (:func:`not_dead_lettered`: they never land, so a stage whose
pending COMPLETED, FAILED or CANCELLED was dead-lettered is still the PROCESSING attempt that
process left). Reading both makes the answer the same whether the redelivery lands before or
after the read.
"""
import json
from typing import AbstractSet, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

#: Per stage: the status of the earlier process's last pending update of it, and the highest
#: attempt among its pending PROCESSING updates (1 for one without ``attempt``; 0 when none).
InheritedStages = Dict[int, Tuple[str, int]]


def not_dead_lettered(entries: Iterable[Any], dead_lettered: AbstractSet[int]) -> List[Any]:
    """The updates an earlier process left in the outbox that still say something of the run
    (entries oldest first, each with ``seq``): all but those the outbox dead-lettered since
    (``dead_lettered``: their ``seq``, which a cut output's new key keeps). Those never reach the
    server, so they say nothing of what it holds or will hold. Taken when the run is read (the
    TypeScript ``notDeadLettered``, which keys them by id)."""
    return [entry for entry in entries if entry.seq not in dead_lettered]


def inherited_stages(entries: Iterable[Any]) -> Dict[str, InheritedStages]:
    """Per run, what the stage updates an earlier process left in the outbox say (entries oldest
    first, each with ``run_id``, ``route`` and ``body``; less those dead-lettered since:
    :func:`not_dead_lettered`). A body that is not a stage update's JSON is skipped (it is
    redelivered as it is all the same)."""
    runs: Dict[str, InheritedStages] = {}
    for entry in entries:
        if not str(entry.route).endswith("/stage-update"):
            continue
        try:
            body = json.loads(entry.body or b"")
        except (ValueError, UnicodeDecodeError):
            continue
        if not isinstance(body, dict):
            continue
        number, status = body.get("stageNumber"), body.get("status")
        if not isinstance(number, int) or isinstance(number, bool) or not isinstance(status, str):
            continue
        stages = runs.setdefault(entry.run_id, {})
        before = stages.get(number, ("", 0))[1]
        attempt = body.get("attempt") if isinstance(body.get("attempt"), int) else 1
        stages[number] = (status, max(before, attempt if status == "PROCESSING" else 0))
    return runs


def stages_left_processing(stored: Sequence[Mapping[str, Any]], inherited: Optional[InheritedStages]) -> Dict[int, int]:
    """Stage number → the attempt an earlier process left running, for the stages it left
    PROCESSING: the server holds the stage PROCESSING or the earlier process's last pending update
    of it is PROCESSING, and neither holds it final. The attempt is the higher of the stored one
    (1 when the server holds none) and the pending ones."""
    inherited = inherited or {}
    by_number = {stage.get("stageNumber"): stage for stage in stored if isinstance(stage, Mapping)}
    left: Dict[int, int] = {}
    for number in set(by_number) | set(inherited):
        if not isinstance(number, int):
            continue
        server = by_number.get(number)
        pending = inherited.get(number)
        server_status = server.get("status") if server is not None else None
        if server_status not in (None, "PROCESSING", "PENDING") or (pending is not None and pending[0] != "PROCESSING"):
            continue
        server_attempt = (server.get("attempt") or 1) if server_status == "PROCESSING" and server is not None else 0
        attempt = max(server_attempt, pending[1] if pending is not None else 0)
        if attempt > 0:
            left[number] = attempt
    return left
