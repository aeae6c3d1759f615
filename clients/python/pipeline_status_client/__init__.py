"""pipeline_status_client: the Python client of the pipeline-status contract.

``PrismaAPIClient`` is a drop-in for the original Python runner's client (same constructor,
method names, arguments and ``bool`` results); change the import line and a runner gets
retries with one idempotency key, Standard Webhooks signing and a durable SQLite outbox.
Standard library only; Python 3.9+.
"""
from .client import DEFAULT_MAX_AGE, DEFAULT_SLOW_RETRY_INTERVAL, UNSERIALISABLE_OUTPUT_PREFIX, AlteredOutput, PrismaAPIClient, QueuedCompletion, Undelivered
from .contract import (
    BASE_PATH,
    DEFAULT_STAGES,
    ENV_OUTBOX_DIR,
    ENV_SIGNING_SECRET,
    ENV_WEBHOOK_SECRET,
    ENV_WEBHOOK_URL,
    FINAL_RUN_STATUSES,
    REPLACEMENT_CHARACTER,
    TRUNCATION_MARKER,
    fit_stage_update,
    is_valid_run_id,
    to_storable_text,
)
from .errors import (
    CatalogueMismatchError,
    ClientClosedError,
    ConfigurationError,
    InvalidRunIdError,
    PipelineStatusError,
    StatusHttpError,
    StatusNetworkError,
)
from .outbox import DeadLetter, OutboxEntry
from .retry import RetryPolicy
from .runs import MAX_LIST_LIMIT, MAX_METADATA_BYTES, MAX_TAGS, RUN_STATUSES
from .stage_retry import RunDeletedError, RunFinishedElsewhereError
from .stream_output import MAX_OUTPUT_CHUNK_BYTES, StageOutputStream
from .signing import decode_signing_secret, sign_webhook, signature_headers, webhook_message_id

__version__ = "0.1.0"

__all__ = [
    "BASE_PATH",
    "DEFAULT_MAX_AGE",
    "DEFAULT_SLOW_RETRY_INTERVAL",
    "DEFAULT_STAGES",
    "ENV_OUTBOX_DIR",
    "ENV_SIGNING_SECRET",
    "ENV_WEBHOOK_SECRET",
    "ENV_WEBHOOK_URL",
    "FINAL_RUN_STATUSES",
    "MAX_LIST_LIMIT",
    "MAX_OUTPUT_CHUNK_BYTES",
    "MAX_METADATA_BYTES",
    "MAX_TAGS",
    "REPLACEMENT_CHARACTER",
    "RUN_STATUSES",
    "TRUNCATION_MARKER",
    "AlteredOutput",
    "StageOutputStream",
    "CatalogueMismatchError",
    "ClientClosedError",
    "UNSERIALISABLE_OUTPUT_PREFIX",
    "ConfigurationError",
    "DeadLetter",
    "InvalidRunIdError",
    "OutboxEntry",
    "PipelineStatusError",
    "PrismaAPIClient",
    "QueuedCompletion",
    "RetryPolicy",
    "RunDeletedError",
    "RunFinishedElsewhereError",
    "StatusHttpError",
    "StatusNetworkError",
    "Undelivered",
    "decode_signing_secret",
    "fit_stage_update",
    "is_valid_run_id",
    "sign_webhook",
    "signature_headers",
    "to_storable_text",
    "webhook_message_id",
]
