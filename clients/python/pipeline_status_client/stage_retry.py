"""Stage retries for the original runner's loop (``client.run_stage_with_retries``), with the
attempt rules of docs/contract.md "Timing, attempts and streamed output", like the TypeScript
``runPipeline``'s ``retry`` option: after attempt k fails and will be retried, the stage is
reported PROCESSING with ``attempt`` k + 1, ``maxAttempts``, ``lastError`` and ``nextRetryAt``;
when attempt k + 1 starts, PROCESSING with ``attempt`` k + 1 and ``nextRetryAt`` null. The wait
between attempts ends at once when the run ends elsewhere (``client.cancelled(run_id)``).
"""
import random
from typing import Any, Callable, Optional, Union

from .contract import to_storable_text
from .errors import PipelineStatusError

#: The default first and highest ceiling of the wait between attempts, in seconds (full jitter, doubling).
DEFAULT_BACKOFF_BASE = 1.0
DEFAULT_BACKOFF_MAX = 30.0
#: The longest ``lastError`` sent (the contract's limit), in characters; a longer one is cut and ended with ``…``.
MAX_LAST_ERROR_LENGTH = 2000

Backoff = Union[float, Callable[[int], float], None]


class RunFinishedElsewhereError(PipelineStatusError):
    """The run was finished by someone else (cancelled by the web app, failed by the stale-run
    sweeper, completed elsewhere) while a stage ran or waited to retry. ``run`` is the run as
    stored (``status``, ``error``); nothing more is sent for it."""

    def __init__(self, run_id: str, run: Optional[dict]):
        status = (run or {}).get("status", "finished")
        reason = (run or {}).get("error")
        super().__init__(f"Run {run_id} was {status} elsewhere" + (f": {reason}" if reason else ""))
        self.run_id = run_id
        self.run = run


class RunDeletedError(RunFinishedElsewhereError):
    """The run was deleted on the server while a stage ran or waited to retry (the run watch read
    ``: closed deleted``; see :meth:`PrismaAPIClient.run_deleted`): there is no run left, so
    ``run`` is ``None``; nothing more is sent for it. As the TypeScript ``RunDeletedError``."""

    def __init__(self, run_id: str):
        PipelineStatusError.__init__(self, f"Run {run_id} was deleted on the server while it ran")
        self.run_id = run_id
        self.run = None
        self.deleted = True


def default_backoff(attempt: int) -> float:
    """Full jitter over 1 s, 2 s, 4 s, ... capped at 30 s, after attempt ``attempt`` failed."""
    return random.random() * min(DEFAULT_BACKOFF_MAX, DEFAULT_BACKOFF_BASE * 2 ** (max(1, attempt) - 1))


def last_error_of(error: BaseException) -> str:
    """The error's message for ``lastError``, at most :data:`MAX_LAST_ERROR_LENGTH` characters."""
    # Stored like an output: characters PostgreSQL cannot store (NUL, lone surrogates) are replaced first.
    message, _ = to_storable_text(str(error) or type(error).__name__)
    if len(message) <= MAX_LAST_ERROR_LENGTH:
        return message
    return message[: MAX_LAST_ERROR_LENGTH - 1] + "\u2026"


def wait_seconds(backoff: Backoff, attempt: int) -> float:
    """The wait after attempt ``attempt`` failed: a number, a function of the attempt, or the default."""
    wait = default_backoff(attempt) if backoff is None else backoff(attempt) if callable(backoff) else float(backoff)
    return wait if wait > 0 else 0.0
