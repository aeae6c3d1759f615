"""Errors of the client. Every one derives from :class:`PipelineStatusError`."""
from typing import Any, Dict, Optional


class PipelineStatusError(Exception):
    """Base class of the client's errors."""


class ConfigurationError(PipelineStatusError, ValueError):
    """The client is misconfigured: no ``FRONTEND_WEBHOOK_URL``, no secret, a bad option."""


class InvalidRunIdError(PipelineStatusError, ValueError):
    """A run id outside the contract's rule (1-128 of ``A-Z a-z 0-9 . _ ~ : -``, not dots only)."""


class ClientClosedError(PipelineStatusError):
    """The client was closed (:meth:`PrismaAPIClient.close`): it sends nothing more. Raised by
    the calls that return the server's data (``get_status``, ``create_run``, ``list_runs``,
    ``count_runs``, ``check_catalogue``), as the TypeScript client's ``ClientClosedError`` (same
    message); the updates (``mark_*``, ``report_progress``, ``complete_run``, ``heartbeat``, a
    stream's chunks) return ``False`` with one error line instead, as they never raise."""

    def __init__(self, message: str = "The PrismaAPIClient is closed"):
        super().__init__(message)


class StatusHttpError(PipelineStatusError):
    """The server answered with a status that is not 2xx.

    ``status`` is the HTTP status, ``problem`` the RFC 9457 body when there was one (its
    ``code`` is stable), ``retry_after`` the ``Retry-After`` in seconds when sent."""

    def __init__(self, message: str, status: int, problem: Optional[Dict[str, Any]] = None, retry_after: Optional[float] = None):
        super().__init__(message)
        self.status = status
        self.problem = problem
        self.retry_after = retry_after

    @property
    def code(self) -> Optional[str]:
        """The problem's ``code`` (``run_not_found``, ``unauthorized``...), if any."""
        code = (self.problem or {}).get("code")
        return code if isinstance(code, str) else None

    @property
    def cause(self) -> str:
        """The short cause a retry is logged with: ``HTTP 503 database_unavailable``, ``HTTP 429``."""
        return f"HTTP {self.status} {self.code}" if self.code else f"HTTP {self.status}"


class StatusNetworkError(PipelineStatusError):
    """The request got no answer: connection refused or reset, DNS, timeout (``timed_out``).

    ``reason`` is the short cause a retry is logged with (``connection refused (ECONNREFUSED)``,
    ``timed out after 30 s``); the message defaults to it."""

    def __init__(self, message: str, timed_out: bool = False, reason: Optional[str] = None):
        super().__init__(message)
        self.timed_out = timed_out
        self.reason = reason or message

    @property
    def cause(self) -> str:
        """The short cause a retry is logged with; see ``reason``."""
        return self.reason


class CatalogueMismatchError(PipelineStatusError, ValueError):
    """The runner's number of stages differs from the run's own stage catalogue
    (:meth:`PrismaAPIClient.check_catalogue`); ``runner_stages`` and ``server_stages`` say by how
    much. A run keeps the catalogue snapshotted when it was created, even after the handlers'
    stages change: the message says to create a new run for the new stages."""

    def __init__(self, run_id: str, runner_stages: int, server_stages: int):
        super().__init__(
            f"Run {run_id}: the runner has {runner_stages} stage(s) but the run's own catalogue has {server_stages}, "
            "snapshotted when the run was created (the run keeps it even if the handlers' stages changed since); "
            "to run other stages, create a new run, which takes the handlers' stages as they are now; "
            f"to run this one, give it {server_stages} stage(s)")
        self.runner_stages = runner_stages
        self.server_stages = server_stages
