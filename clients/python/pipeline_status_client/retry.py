"""The one retry rule of the client: which failures may succeed later, and how long to wait.

Exponential backoff with full jitter, capped, honouring ``Retry-After`` (the same formula as the
TypeScript client's ``retryDelay``). All durations are in seconds.
"""
import random
from dataclasses import dataclass
from datetime import datetime, timezone
from email.utils import parsedate_to_datetime
from typing import Optional

from .errors import StatusHttpError, StatusNetworkError

#: Refusals that no retry can fix: the update is dead-lettered (issue 9 item 4).
PERMANENT_STATUSES = frozenset({400, 404, 409, 413, 415, 422})
#: Refusals of the credentials: fixable by fixing the secret, so retried slowly.
AUTH_STATUSES = frozenset({401, 403})


@dataclass(frozen=True)
class RetryPolicy:
    """How one request is retried before the outbox takes over.

    ``attempts``: tries in all, the first included (default 5). ``base_delay``: seconds before the
    first retry, doubling each time, with full jitter (default 0.3). ``max_delay``: the cap of a
    computed delay, in seconds (default 10). ``max_retry_after``: the cap of a server's
    ``Retry-After``, in seconds, honoured exactly below it (default 60).
    """

    attempts: int = 5
    base_delay: float = 0.3
    max_delay: float = 10.0
    max_retry_after: float = 60.0

    def __post_init__(self) -> None:
        if not isinstance(self.attempts, int) or self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be a whole number, at least 1")
        for name in ("base_delay", "max_delay", "max_retry_after"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"RetryPolicy.{name} must be a number of seconds, at least 0")

    def delay(self, retry: int, retry_after: Optional[float] = None) -> float:
        """Seconds to wait before retry number ``retry`` (1 for the first): the server's
        ``retry_after`` when it sent one (capped, no jitter), else full jitter over
        ``base_delay * 2 ** (retry - 1)``, capped at ``max_delay``."""
        if retry_after is not None:
            return min(self.max_retry_after, max(0.0, retry_after))
        return min(self.max_delay, random.random() * self.base_delay * 2 ** (max(1, retry) - 1))


def describe_retry(retry: int, attempts: int) -> str:
    """How a retry is counted in the client's warnings, the same words as the TypeScript client's:
    the attempt it starts among all the request's ``attempts`` (the first included, as
    :attr:`RetryPolicy.attempts`), then the retry among all the retries, e.g. ``attempt 2 of 5
    (retry 1 of 4)`` for the first retry of the default policy. ``retry`` counts from 1."""
    return f"attempt {retry + 1} of {attempts} (retry {retry} of {attempts - 1})"


def parse_retry_after(value: Optional[str]) -> Optional[float]:
    """A ``Retry-After`` header (delta seconds or an HTTP date, RFC 9110) in seconds from now."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return max(0.0, (when - datetime.now(timezone.utc)).total_seconds())


def is_retriable(error: BaseException) -> bool:
    """Whether a failed request may succeed if sent again unchanged: no answer, 408, 429, 5xx."""
    if isinstance(error, StatusNetworkError):
        return True
    if isinstance(error, StatusHttpError):
        return error.status in (408, 429) or error.status >= 500
    return False


def is_auth_refusal(error: BaseException) -> bool:
    """401 or 403: the secret does not match; retried slowly, with an error logged each time."""
    return isinstance(error, StatusHttpError) and error.status in AUTH_STATUSES
