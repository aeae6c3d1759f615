"""Standard Webhooks signing with route-bound message ids, exactly as docs/security.md
("What is signed: the scheme") specifies, so the package's handlers accept it:

    webhook-id        = <METHOD> SP <route> SP <unique>
    webhook-timestamp = Unix time in seconds, when this attempt was signed
    webhook-signature = "v1," base64(HMAC-SHA256(key, webhook-id "." webhook-timestamp "." body))
"""
import base64
import hashlib
import hmac
import time
from typing import Dict, Optional

__all__ = ["decode_signing_secret", "sign_webhook", "signature_headers", "webhook_message_id"]


def decode_signing_secret(secret: str) -> bytes:
    """The HMAC key of a signing secret: the base64-decoded part after ``whsec_`` (Standard
    Webhooks), or the UTF-8 bytes of a plain string. Raises ``ValueError`` for an empty secret or
    a ``whsec_`` secret that is not base64."""
    if not secret:
        raise ValueError("the signing secret is empty")
    if secret.startswith("whsec_"):
        try:
            return base64.b64decode(secret[len("whsec_"):], validate=True)
        except ValueError as error:
            raise ValueError("the signing secret after 'whsec_' is not base64") from error
    return secret.encode("utf-8")


def webhook_message_id(method: str, route: str, unique: str) -> str:
    """The route-bound ``webhook-id``: ``"POST run_1/stage-update <unique>"``. ``route`` is the
    path after the base path without its leading slash, the run id unencoded; ``unique`` is the
    same for every attempt of one message (the client uses the update's Idempotency-Key)."""
    if not unique:
        raise ValueError("the unique part of a webhook-id must not be empty")
    return f"{method.upper()} {route} {unique}"


def sign_webhook(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` over ``message_id.timestamp.body``; ``timestamp`` in Unix
    seconds, ``body`` the exact bytes sent (``b""`` for a GET)."""
    signed = f"{message_id}.{timestamp}.".encode("utf-8") + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode("ascii")


def signature_headers(key: bytes, message_id: str, body: bytes, timestamp: Optional[int] = None) -> Dict[str, str]:
    """The three Standard Webhooks headers for one attempt; ``timestamp`` (Unix seconds)
    defaults to now. Sign every attempt again, keeping the same ``message_id``."""
    stamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign_webhook(key, message_id, stamp, body),
    }
