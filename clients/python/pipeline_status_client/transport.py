"""One HTTP request with the standard library (urllib), signed per attempt; no retries here."""
import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Dict, Optional

from .contract import HEADER_IDEMPOTENCY_KEY, HEADER_RETRY_AFTER, HEADER_SECRET
from .errors import StatusHttpError, StatusNetworkError
from .retry import parse_retry_after
from .signing import signature_headers, webhook_message_id

USER_AGENT = "pipeline-status-client-python/0.1.0"


@dataclass(frozen=True)
class Request:
    """One request of the contract. ``route`` is the path after the base path (``run_1/status``);
    ``unique`` names the message: the Idempotency-Key of an update, kept across its retries."""

    method: str
    route: str
    unique: str
    body: Optional[bytes] = None


class Transport:
    """Sends one :class:`Request` to ``{base_url}{base_path}/{route}`` and returns the JSON answer.

    ``timeout`` is in seconds, per attempt. Sends ``X-Webhook-Secret`` when ``secret`` is set and
    signs every attempt with a fresh timestamp when ``signing_key`` is set.
    """

    def __init__(self, base_url: str, base_path: str, secret: Optional[str], signing_key: Optional[bytes], timeout: float):
        self.base_path = "/" + base_path.strip("/") if base_path.strip("/") else ""
        base_url = base_url.rstrip("/")
        # The demo and the Express example print the URL with the base path (issue 10 item 6):
        # accept it instead of doubling the path.
        if self.base_path and base_url.endswith(self.base_path):
            base_url = base_url[: -len(self.base_path)]
        self.base_url = base_url
        self.secret = secret
        self.signing_key = signing_key
        self.timeout = timeout

    def url(self, route: str) -> str:
        """The absolute URL of a route; the run id is percent-encoded where it must be."""
        return f"{self.base_url}{self.base_path}/{urllib.request.quote(route, safe='/:~.-_')}"

    def send(self, request: Request) -> Dict[str, Any]:
        """The decoded JSON of a 2xx answer. Raises :class:`StatusHttpError` for any other
        status and :class:`StatusNetworkError` when there was no answer."""
        headers = {"Accept": "application/json", "User-Agent": USER_AGENT}
        if request.body is not None:
            headers["Content-Type"] = "application/json"
        if request.method != "GET":
            headers[HEADER_IDEMPOTENCY_KEY] = request.unique
        if self.secret:
            headers[HEADER_SECRET] = self.secret
        if self.signing_key is not None:
            message_id = webhook_message_id(request.method, request.route, request.unique)
            headers.update(signature_headers(self.signing_key, message_id, request.body or b""))
        what = f"{request.method} {self.base_path}/{request.route}"
        http_request = urllib.request.Request(self.url(request.route), data=request.body, headers=headers, method=request.method)
        try:
            with urllib.request.urlopen(http_request, timeout=self.timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as error:
            raw = error.read() if error.fp is not None else b""
            problem = _decode(raw)
            detail = ""
            if isinstance(problem, dict):
                detail = f" {problem.get('code') or ''}: {problem.get('detail') or problem.get('title') or ''}".rstrip(": ")
            raise StatusHttpError(
                f"{what} answered {error.code}{detail}",
                error.code,
                problem if isinstance(problem, dict) else None,
                parse_retry_after(error.headers.get(HEADER_RETRY_AFTER) if error.headers else None),
            ) from None
        except (socket.timeout, TimeoutError) as error:
            raise StatusNetworkError(f"{what} timed out after {self.timeout:g} s", True, f"timed out after {self.timeout:g} s") from error
        except urllib.error.URLError as error:
            timed_out = isinstance(error.reason, (socket.timeout, TimeoutError))
            raise StatusNetworkError(f"{what} got no answer: {error.reason}", timed_out, _network_cause(error.reason, self.timeout)) from error
        except (ConnectionError, OSError) as error:
            raise StatusNetworkError(f"{what} got no answer: {error}", False, _network_cause(error, self.timeout)) from error
        decoded = _decode(raw)
        return decoded if isinstance(decoded, dict) else {}


def _network_cause(reason: object, timeout: float) -> str:
    """The short cause of a request without an answer, named as Node names it where it can."""
    if isinstance(reason, (socket.timeout, TimeoutError)):
        return f"timed out after {timeout:g} s"
    if isinstance(reason, ConnectionRefusedError):
        return "connection refused (ECONNREFUSED)"
    if isinstance(reason, ConnectionResetError):
        return "connection reset (ECONNRESET)"
    if isinstance(reason, socket.gaierror):
        return f"host not found ({reason})"
    return str(reason) or type(reason).__name__


def _decode(raw: bytes) -> Any:
    try:
        return json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        return None
